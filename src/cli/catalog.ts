// The composition root: the component types and service kinds this gateway
// is built from, handed to init (which imports none of them itself).
import { componentTypes } from '../components/registry.ts';
import type { Catalog } from '../init/service-kind.ts';
import { serviceKinds } from '../services/index.ts';

export const catalog: Catalog = { componentTypes, serviceKinds };

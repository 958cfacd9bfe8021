// The service kinds of this gateway (handed to init by the CLI, src/cli/catalog.ts).
import type { ServiceKind } from '../init/service-kind.ts';
import { fileGatewayService } from './file-gateway/supervised.ts';

export const serviceKinds: Record<string, ServiceKind> = {
  'file-gateway': fileGatewayService,
};

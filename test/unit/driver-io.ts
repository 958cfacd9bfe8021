// The nic-driver's counters and state (src/components/nic-driver/io.ts) for
// tests that drive its link I/O directly (nic-driver-batched, nic-driver-ring).
import { Counters } from '../../src/runtime/counters.ts';
import type { DriverIo } from '../../src/components/nic-driver/io.ts';

export const VNET = 12;
export const MIN_FRAME = VNET + 14;

export function driverIo(pad = 0): DriverIo {
  const c = new Counters();
  const d = (n: string): number => c.define(n);
  return {
    counters: c,
    ids: {
      rxFrames: d('rx.frames'), rxBytes: d('rx.bytes'), txFrames: d('tx.frames'), txBytes: d('tx.bytes'), rxBlocked: d('rx.session-full'),
      dropRunt: d('drop.rx-runt'), dropRxErr: d('drop.tap-read-error'), dropRxTrunc: d('drop.rx-truncated'),
      dropTxBusy: d('drop.tap-write-busy'), dropTxErr: d('drop.tap-write-rejected'), dropTxRunt: d('drop.tx-runt'),
    },
    minFrame: MIN_FRAME,
    pad,
    state: { blocked: false, lastRxError: 0, lastTxError: 0 },
  };
}

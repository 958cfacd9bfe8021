// Types the router's modules share with its parts that sit beside it (mirror,
// config): kept here, importing nothing of the router, so no import circle
// runs through router.ts.

/** What the router needs of a domain's egress: a PacketSource satisfies it. */
export interface EgressPort {
  readonly buf: Uint8Array;
  readonly slotSize: number;
  /** A slot offset in buf, or -1 when every slot is in flight. */
  alloc(): number;
  /** Slots alloc() would hand out now; absent: never counted (egress-hold.ts holds no ingress for it). */
  available?(): number;
  submit(offset: number, length: number): void;
  flush(): void;
}

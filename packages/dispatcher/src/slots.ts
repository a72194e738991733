import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { heldSlots, releaseSlot, takeSlot, type Logger, type SlotLease } from '@binaryalert/core';

export interface SlotsConfig {
  /** The dispatch slots table (dispatchSlotsTableDefinition). */
  table: string;
  /** Slots 0..capacity-1 exist: the most analyzer invocations in flight at once. */
  capacity: number;
  /** How long a slot is held unless released: a receive plus the analyzer's event age and timeout. */
  leaseSeconds: number;
  /** Least time between two scans of the table when no slot is known to be free (default 1 s). */
  rescanMs?: number;
}

/**
 * The slots one dispatcher run takes and gives back. It scans the table for free slots only when
 * it knows of none (at most every `rescanMs`), then takes them one by one with a conditional
 * write, so concurrent receive loops and overlapping dispatcher runs never share a slot.
 */
export class DispatchSlots {
  private free: number[] = [];
  private lastScanMs = -Infinity;

  constructor(
    private readonly dynamo: DynamoDBClient,
    private readonly config: SlotsConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A held slot, or undefined when every slot is held by an analyzer in flight. */
  async acquire(): Promise<SlotLease | undefined> {
    for (;;) {
      if (this.free.length === 0) {
        if (this.now() - this.lastScanMs < (this.config.rescanMs ?? 1000)) return undefined;
        this.lastScanMs = this.now();
        const held = await heldSlots(this.dynamo, this.config.table, this.now());
        this.free = [];
        for (let slot = this.config.capacity - 1; slot >= 0; slot--) {
          if (!held.has(slot)) this.free.push(slot);
        }
        if (this.free.length === 0) return undefined;
      }
      const lease = { slot: this.free.pop()!, holder: randomUUID() };
      const took = await takeSlot(
        this.dynamo,
        this.config.table,
        lease,
        this.config.leaseSeconds,
        this.now(),
      );
      if (took) return lease;
    }
  }

  /** Gives a slot back that no analyzer got (nothing received, or Lambda refused the invoke). */
  async release(lease: SlotLease): Promise<void> {
    try {
      if (await releaseSlot(this.dynamo, this.config.table, lease)) this.free.push(lease.slot);
    } catch (error) {
      // Not fatal: the slot frees itself when its lease runs out.
      this.log.warn('could not release a dispatch slot', { slot: lease.slot, error });
    }
  }
}

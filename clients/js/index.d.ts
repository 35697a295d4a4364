// Types of tornado-sse (tornado-sse.js, which is tornado_sse/static/client.js).
// Checked with `tsc --strict` (tsconfig.json, test/types.ts).

/** An appointment's or availability rule's columns (SPEC §2: times in epoch seconds). */
export interface Row {
  id: number;
  [column: string]: unknown;
}

/** The appointment payload of SPEC §2. */
export interface AppointmentRow extends Row {
  start: number;
  end: number;
  product_id: number | null;
  staff_ids: number[];
  staff_id: number | null;
  status: 'unpaid' | 'pending-confirmation' | 'confirmed' | 'paid' | 'complete' | 'in-cart'
    | 'was-in-cart' | 'cancelled' | 'trash';
  customer_id: number | null;
  order_id: number | null;
  order_item_id: number | null;
  cost: string;
  all_day: boolean;
  customer_status: 'expected' | 'arrived' | 'no-show';
  version?: number;
}

export type Topic =
  | 'appointment.created' | 'appointment.updated' | 'appointment.rescheduled'
  | 'appointment.cancelled' | 'appointment.trashed' | 'appointment.deleted'
  | 'availability.created' | 'availability.updated' | 'availability.deleted';

/** The event envelope of SPEC §2; `id` is the resume cursor. */
export interface SseEvent<P extends Row = Row> {
  id: number;
  topic: Topic | (string & {});
  resource: 'appointment' | 'availability' | (string & {});
  resource_id: number;
  payload: P;
  ts: number;
}

/**
 * 'live': the stream is open and heard from; 'polling': the long-poll
 * transport's live state; 'reconnecting': no live connection right now
 * (also: a stale one was closed, issue 23); 'offline': the network is
 * gone; 'unauthorized': the token or session is not accepted (retried).
 */
export type Status = 'live' | 'reconnecting' | 'polling' | 'offline' | 'unauthorized';

/** The parts of an EventSource the client uses (the browser's, or npm `eventsource`). */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export interface EventSourceConstructor {
  /** `fetch` is passed only to implementations that declare support (npm `eventsource` ≥ 4.1). */
  new (url: string, init?: {withCredentials?: boolean; fetch?: (input: any, init: any) => Promise<any>}):
    EventSourceLike;
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface SubscribeOptions {
  /** Exact topics or prefix wildcards (`appointment.*`), as an array or a comma list. */
  topics?: readonly string[] | string;
  /** Resume after this event id (a snapshot's `last_event_id`); none: start live. */
  since?: number | null;
  staffId?: number | string | null;
  productId?: number | string | null;
  /** The server's URL (default: the page's origin; required in node). */
  baseUrl?: string;
  /** 'auto' (SSE, long-poll when a proxy buffers), 'sse' or 'poll'. */
  transport?: 'auto' | 'sse' | 'poll';
  /** One connection per browser and identity, shared by its tabs (default: true in a page). */
  shared?: boolean;
  /** Seconds between the server's heartbeats (5–300, default 15; 0: off). */
  heartbeat?: number;
  /** A JWT sent as `Authorization: Bearer` (a page had better use the cookie session). */
  token?: string | null;
  /** The EventSource to use (node: `import {EventSource} from 'eventsource'`). */
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
}

export interface SubscribeCallbacks {
  onStatus?: (status: Status) => void;
  /** The server cannot replay from the cursor: reload the snapshot; the cursor is now `lastId`. */
  onReset?: (lastId: number) => void;
}

export interface Subscription {
  /** Whether this tab holds the connection that the browser's other tabs share. */
  readonly leader: boolean;
  readonly status: Status | null;
  /** The id of the last event delivered (the cursor). */
  readonly lastEventId: number | null;
  close(): void;
}

/**
 * Events from `since` on, in id order, each once, live; shared by the tabs
 * of one browser that have the same identity and options.
 */
export function subscribe(options: SubscribeOptions, onEvent: (event: SseEvent) => void,
  callbacks?: SubscribeCallbacks): Subscription;

export type Resource = 'appointments' | 'availabilities';

export interface FollowRange extends Omit<SubscribeOptions, 'topics' | 'since'> {
  /** Appointments only: the range (epoch seconds, ISO 8601 or Date); default from a day ago. */
  start?: number | string | Date;
  /** Appointments only: default a week from now. */
  end?: number | string | Date;
  /** Seconds a snapshot's whole answer may take before it is tried again (default 60). */
  snapshotTimeout?: number;
}

/**
 * What changed. `old` is the row before the event (null: it was not in the
 * set); a 'delete' is a row that left the set: deleted, trashed, or moved
 * out of the range or the filters (`event.payload` says where to).
 */
export type Change<R extends Row = Row> =
  | {type: 'snapshot'; resource: Resource; lastEventId: number}
  | {type: 'insert' | 'update'; resource: Resource; id: number; row: R; old: R | null; event: SseEvent<R>}
  | {type: 'delete'; resource: Resource; id: number; row: null; old: R | null; event: SseEvent<R>};

/** A snapshot failed for a while (network, 5xx, 429) and is tried again in `delayMs`. */
export interface Retry {
  resource: Resource;
  error: unknown;
  delayMs: number;
  attempt: number;
}

export interface FollowHandlers<R extends Row = Row> {
  /** After a snapshot loads (first, after a new range, after a reset) and after each event that changed a row. */
  onChange?: (rows: ReadonlyMap<number, R>, change: Change<R>) => void;
  /**
   * Every event of the followed resources, before it is applied. `fresh`:
   * newer than what the rows reflect (false for an event a snapshot already holds).
   */
  onEvent?: (event: SseEvent<R>, fresh: boolean) => void;
  onStatus?: (status: Status) => void;
  /** The stream could not replay the gap; the snapshots reload (the rows stay until they arrive). */
  onReset?: (lastId: number) => void;
  onRetry?: (retry: Retry) => void;
  /** A snapshot refused for good (4xx but 429: `SnapshotError`); network errors, 5xx and 429 are retried. */
  onError?: (error: unknown) => void;
}

export interface Following<R extends Row = Row> {
  /** The rows in range by id, kept current (the first resource's, when following several). */
  readonly rows: ReadonlyMap<number, R>;
  /** One followed resource's rows. */
  of(resource: 'appointments'): ReadonlyMap<number, AppointmentRow>;
  of(resource: Resource): ReadonlyMap<number, Row>;
  /** Settles once the snapshots are loaded and the stream is subscribed (rejects with a SnapshotError). */
  readonly ready: Promise<void>;
  /**
   * Follow appointments in another range (navigating): its snapshot loads
   * while the stream goes on; rows outside it leave when it arrives.
   */
  setRange(range: Pick<FollowRange, 'start' | 'end'>): Promise<void>;
  /** Whether this tab holds the connection that the browser's other tabs share. */
  readonly leader: boolean;
  readonly status: Status | null;
  readonly lastEventId: number | null;
  close(): void;
}

/**
 * Load the snapshot of `resource` (appointments: in `range`), then keep it
 * current from its `last_event_id`; several resources share one stream.
 */
export function follow(resource: 'appointments', range: FollowRange,
  handlers?: FollowHandlers<AppointmentRow>): Following<AppointmentRow>;
export function follow(resource: Resource | readonly Resource[], range: FollowRange,
  handlers?: FollowHandlers<Row>): Following<Row>;

/** A snapshot's HTTP error (SPEC §4 body in `body`). */
export class SnapshotError extends Error {
  constructor(status: number, message: string, body: unknown);
  readonly status: number;
  readonly body: unknown;
  /** Seconds the server asked to wait (Retry-After of a 429 or 503), else 0. */
  readonly retryAfter: number;
}

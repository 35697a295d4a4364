// The globals the browser scripts share (plain <script>s, no build step;
// only client.js is a module, handed to them by tornado-sse-global.js), for
// the type check in tsconfig.json.

/** FullCalendar 7's MIT bundle (vendored, untyped here). */
declare const FullCalendar: any;

interface Window {
  /** client.js, made global by tornado-sse-global.js; typed by the npm package's types. */
  TornadoSSE: Pick<typeof import("../clients/js/index"), "subscribe" | "follow" | "SnapshotError">;
  /** calendar.js: the page's surface for browser tests and support. */
  tsse: any;
  /** calendar.js: a shorter bound on each request, for browser tests. */
  tsseRequestTimeoutMs?: number;
}

/** tornado-sse-global.js defines it on globalThis. */
declare var TornadoSSE: Window["TornadoSSE"];

/** directory.js, activity.js, booking.js, staffday.js: the calendar's parts. */
declare var TsseDirectory: any;
declare var TsseActivity: any;
declare var TsseBooking: any;
declare var TsseCustomers: any;
declare var TsseStaffDay: any;
/** writes.js: versioned writes and their conflicts. */
declare var TsseWrites: any;

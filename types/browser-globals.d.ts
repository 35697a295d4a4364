// The globals the browser scripts share (they are plain <script>s, no
// modules, no build step), for the type check in tsconfig.json.

/** FullCalendar 7's MIT bundle (vendored, untyped here). */
declare const FullCalendar: any;

interface Window {
  /** client.js */
  TornadoSSE: { subscribe: (...args: any[]) => { readonly leader: boolean; close(): void } };
  /** calendar.js: the page's surface for browser tests and support. */
  tsse: any;
}

/** client.js defines it on globalThis. */
declare var TornadoSSE: Window["TornadoSSE"];

/** directory.js, activity.js, booking.js, staffday.js: the calendar's parts. */
declare var TsseDirectory: any;
declare var TsseActivity: any;
declare var TsseBooking: any;
declare var TsseStaffDay: any;
/** writes.js: versioned writes and their conflicts. */
declare var TsseWrites: any;

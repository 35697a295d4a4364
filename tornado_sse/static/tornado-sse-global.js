// @ts-check
/*
 * The calendar's scripts are plain deferred <script>s that use the global
 * `TornadoSSE`; the client itself is an ES module (client.js, the same file
 * the npm package clients/js ships). This module is the one bridge between
 * them, so that the page needs no build step and the client has one source.
 * A module script without `async` runs in document order with the deferred
 * scripts (HTML spec), so calendar.js, after it, finds the global.
 */
import {subscribe, follow, SnapshotError} from './client.js';

globalThis.TornadoSSE = {subscribe, follow, SnapshotError};

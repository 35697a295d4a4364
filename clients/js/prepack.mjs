// The package ships tornado_sse/static/client.js, the very file the server
// serves to the calendar page: one source. npm pack leaves symlinks out, so
// prepack copies it in as tornado-sse.js (git ignores the copy) and
// postpack (`--clean`) removes it again, so no stale copy lingers.
import {copyFileSync, rmSync} from 'node:fs';

const copy = new URL('./tornado-sse.js', import.meta.url);
if (process.argv.includes('--clean')) {
  rmSync(copy, {force: true});
} else {
  copyFileSync(new URL('../../tornado_sse/static/client.js', import.meta.url), copy);
}

// The package against a real tornado_sse server and PostgreSQL, in node with
// the npm `eventsource` package as the EventSource (issue 22). The server is
// started by tests/test_client_js.py, which passes it in the environment:
// TSSE_URL, TSSE_ADMIN_TOKEN and TSSE_STAFF_TOKEN (a staff token of staff 5).
// By hand: start `python run.py`, then
//   TSSE_URL=http://127.0.0.1:8888 TSSE_ADMIN_TOKEN=$(python run.py token --role admin) \
//   TSSE_STAFF_TOKEN=$(python run.py token --role staff --staff-id 5) npm test
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';
import {EventSource} from 'eventsource';
import {follow, subscribe, SnapshotError} from '../../../tornado_sse/static/client.js';

const {TSSE_URL: baseUrl, TSSE_ADMIN_TOKEN: adminToken, TSSE_STAFF_TOKEN: staffToken} = process.env;
const missing = !baseUrl || !adminToken || !staffToken;
if (missing) console.log('# skipped: TSSE_URL, TSSE_ADMIN_TOKEN and TSSE_STAFF_TOKEN name the server to test');

const WAIT_MS = 5000;
// Each test books in a week of its own, so that no test sees another's rows.
let nextWeek = Date.parse('2031-01-06T00:00:00Z') / 1000;
function week() {
  const start = nextWeek;
  nextWeek += 14 * 86400; // and a week between: rows moved out of one range land in no other
  return {start, end: start + 7 * 86400};
}

/** The write API, as an admin (SPEC §8). */
async function api(method, path, body) {
  const res = await fetch(new URL(path, baseUrl), {
    method,
    headers: {Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

function book(start, {hours = 1, staff = 5, status = 'confirmed'} = {}) {
  return api('POST', '/api/appointments', {
    start, end: start + hours * 3600, staff_ids: [staff], product_id: 456, customer_id: 789, status,
    // Tests book independently of each other; time clashes are not what they check (SPEC §8).
    overlap_allowed: true});
}

async function newestEventId() {
  const res = await fetch(new URL('/poll', baseUrl), {headers: {Authorization: `Bearer ${adminToken}`}});
  return (await res.json()).last_id;
}

/** Until `check()` is truthy (polled every 20 ms), at most WAIT_MS. */
async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`not within ${WAIT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const common = {baseUrl, EventSource};

describe('subscribe', {skip: missing}, () => {
  const subs = [];
  after(() => subs.forEach((s) => s.close()));

  for (const transport of ['sse', 'poll']) {
    test(`${transport}: replays after since, then live, each event once and in order`, async () => {
      const {start} = week();
      const first = await book(start);
      const since = await newestEventId();
      const second = await book(start + 3600);
      const events = [];
      const statuses = [];
      const sub = subscribe({...common, token: adminToken, topics: 'appointment.*', since, transport},
        (e) => events.push(e), {onStatus: (s) => statuses.push(s)});
      subs.push(sub);
      await until('the replayed event', () => events.length >= 1);
      const third = await book(start + 7200);
      await until('the live event', () => events.length >= 2);

      assert.deepEqual(events.map((e) => [e.topic, e.resource_id]),
        [['appointment.created', second.id], ['appointment.created', third.id]]);
      assert.ok(events.every((e, i) => i === 0 || e.id > events[i - 1].id));
      assert.equal(sub.lastEventId, events[1].id);
      assert.equal(sub.status, transport === 'sse' ? 'live' : 'polling');
      assert.equal(sub.leader, true); // node has no tabs to share with
      assert.ok(!events.some((e) => e.resource_id === first.id));
      sub.close();
    });
  }

  test('a staff token over SSE gets its own appointments only, by header (not in the URL)', async () => {
    const {start} = week();
    const since = await newestEventId();
    const events = [];
    const urls = [];
    class Recording extends EventSource {
      constructor(url, init) { urls.push(url); super(url, init); }
    }
    const sub = subscribe({...common, EventSource: Recording, token: staffToken, topics: ['appointment.*'], since},
      (e) => events.push(e));
    subs.push(sub);
    const theirs = await book(start, {staff: 7});
    const mine = await book(start + 3600, {staff: 5});
    await until('staff 5\'s event', () => events.length >= 1);
    assert.deepEqual(events.map((e) => e.resource_id), [mine.id]);
    assert.notEqual(theirs.id, mine.id);
    assert.ok(urls.length >= 1 && urls.every((u) => !u.includes(staffToken)), urls.join(' '));
    sub.close();
  });

  test('a bad token says unauthorized', async () => {
    const statuses = [];
    const sub = subscribe({...common, token: 'not-a-jwt', topics: 'appointment.*'}, () => {},
      {onStatus: (s) => statuses.push(s)});
    subs.push(sub);
    await until('unauthorized', () => statuses.includes('unauthorized'));
    sub.close();
  });

  test('bad options are refused at once', () => {
    assert.throws(() => subscribe({EventSource, topics: 'x'}, () => {}), /baseUrl is required/);
    assert.throws(() => subscribe({...common, heartbeat: 2}, () => {}), /heartbeat/);
  });
});

describe('follow', {skip: missing}, () => {
  const views = [];
  after(() => views.forEach((v) => v.close()));

  test('appointments: the snapshot, then every change applied to the keyed rows', async () => {
    const range = week();
    const kept = await book(range.start + 3600);
    const before = await book(range.start - 7200); // ends before the range: not in it
    const changes = [];
    const view = follow('appointments', {...common, token: adminToken, ...range},
      {onChange: (rows, change) => changes.push(change.type)});
    views.push(view);
    await view.ready;
    assert.deepEqual([...view.rows.keys()], [kept.id]);
    assert.equal(view.rows.get(kept.id).status, 'confirmed');
    assert.deepEqual(changes, ['snapshot']);

    const added = await book(range.start + 86400);
    await until('the new row', () => view.rows.has(added.id));
    await api('PATCH', `/api/appointments/${kept.id}`, {status: 'paid'});
    await until('the update', () => view.rows.get(kept.id).status === 'paid');
    // Moved out of the range: it leaves the set; moved in: it joins.
    await api('PATCH', `/api/appointments/${added.id}`, {start: range.end + 3600, end: range.end + 7200});
    await until('the row that left the range', () => !view.rows.has(added.id));
    await api('PATCH', `/api/appointments/${before.id}`,
      {start: range.start + 7200, end: range.start + 10800});
    await until('the row that entered the range', () => view.rows.has(before.id));
    // DELETE trashes (SPEC §8): the snapshot would not list it, so it leaves.
    await api('DELETE', `/api/appointments/${kept.id}`);
    await until('the trashed row gone', () => !view.rows.has(kept.id));

    assert.deepEqual([...view.rows.keys()], [before.id]);
    assert.equal(view.rows.get(before.id).start, range.start + 7200);
    assert.deepEqual(changes, ['snapshot', 'insert', 'update', 'delete', 'insert', 'delete']);
    assert.equal(view.lastEventId, await newestEventId());
    assert.equal(view.status, 'live');
  });

  test('a staff member follows their own appointments; one moved to someone else leaves', async () => {
    const range = week();
    const mine = await book(range.start + 3600, {staff: 5});
    const theirs = await book(range.start + 7200, {staff: 7});
    const view = follow('appointments', {...common, token: staffToken, ...range});
    views.push(view);
    await view.ready;
    assert.deepEqual([...view.rows.keys()], [mine.id]);
    await api('PATCH', `/api/appointments/${mine.id}`, {staff_ids: [7]});
    await until('the row moved away', () => !view.rows.has(mine.id));
    assert.ok(!view.rows.has(theirs.id));
  });

  test('availabilities', async () => {
    const view = follow('availabilities', {...common, token: adminToken});
    views.push(view);
    await view.ready;
    const rule = await api('POST', '/api/availabilities',
      {scope: 'global', title: 'node test closure', range_type: 'custom', appointable: false,
        from_range: '2031-02-01', to_range: '2031-02-02', priority: 10});
    await until('the new rule', () => view.rows.has(rule.id));
    assert.equal(view.rows.get(rule.id).title, 'node test closure');
    await api('DELETE', `/api/availabilities/${rule.id}?force=true`);
    await until('the deleted rule', () => !view.rows.has(rule.id));
  });

  test('appointments and availabilities over one stream; a new range loads while it goes on', async () => {
    const first = week();
    const second = week();
    const here = await book(first.start + 3600);
    const there = await book(second.start + 3600);
    const changes = [];
    const events = [];
    const view = follow(['appointments', 'availabilities'], {...common, token: adminToken, ...first}, {
      onChange: (rows, change) => changes.push([change.resource, change.type, change.id ?? null]),
      onEvent: (event, fresh) => events.push([Number(event.id), fresh]),
    });
    views.push(view);
    await view.ready;
    assert.equal(view.rows, view.of('appointments'));
    assert.deepEqual([...view.of('appointments').keys()], [here.id]);
    const since = view.lastEventId;

    const rule = await api('POST', '/api/availabilities',
      {scope: 'global', title: 'two resources', range_type: 'custom', appointable: false,
        from_range: '2031-03-01', to_range: '2031-03-02', priority: 10});
    await until('the rule', () => view.of('availabilities').has(rule.id));
    await api('PATCH', `/api/appointments/${here.id}`, {status: 'paid'});
    await until('the update', () => view.rows.get(here.id).status === 'paid');

    // Another week: its rows arrive, the first week's leave, the stream stays.
    await view.setRange(second);
    assert.deepEqual([...view.rows.keys()], [there.id]);
    const kept = view.rows.get(there.id);
    // A range that still holds the row: the same object (a view comparing
    // by identity redraws nothing).
    await view.setRange({start: second.start - 3600, end: second.end});
    assert.equal(view.rows.get(there.id), kept);
    await api('PATCH', `/api/appointments/${here.id}`, {status: 'confirmed'}); // out of range now
    await api('PATCH', `/api/appointments/${there.id}`, {status: 'complete'});
    await until('the update in the new range', () => view.rows.get(there.id).status === 'complete');
    assert.ok(!view.rows.has(here.id));

    // A range that ends before it starts is refused at once and changes nothing.
    await assert.rejects(view.setRange({start: second.end, end: second.start}), RangeError);
    assert.deepEqual([...view.rows.keys()], [there.id]);
    assert.equal(view.status, 'live');
    assert.equal(view.lastEventId, await newestEventId());
    // One stream: every event once, in order, each news to the rows.
    const ids = events.map(([id]) => id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.every((id) => id > since) && events.every(([, fresh]) => fresh), JSON.stringify(events));
    // The two first snapshots land in either order.
    assert.deepEqual(changes.slice(0, 2).sort(), [['appointments', 'snapshot', null], ['availabilities', 'snapshot', null]]);
    assert.deepEqual(changes.slice(2), [
      ['availabilities', 'insert', rule.id], ['appointments', 'update', here.id],
      ['appointments', 'snapshot', null], ['appointments', 'snapshot', null],
      ['appointments', 'update', there.id]]);
    await api('DELETE', `/api/availabilities/${rule.id}?force=true`);
  });

  test('a row moved into the new range while its snapshot is on the way stays', async () => {
    const first = week();
    const second = week();
    const mover = await book(first.start + 3600);
    const stays = await book(first.start + 7200);
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    const held = `start=${second.start}`;
    // The snapshot of the new range is taken at once, its answer held back:
    // the move below happens after it, and its event arrives before it.
    const slowFetch = async (url, init) => {
      const res = await fetch(url, init);
      if (String(url).includes(held)) await gate;
      return res;
    };
    const view = follow('appointments', {...common, token: adminToken, ...first, fetch: slowFetch});
    views.push(view);
    await view.ready;
    const loading = view.setRange(second);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the snapshot request is out
    await api('PATCH', `/api/appointments/${mover.id}`, {start: second.start + 3600, end: second.start + 7200});
    await until('the moved row, in the range being loaded', () => view.rows.get(mover.id)?.start === second.start + 3600);
    release();
    await loading;
    assert.deepEqual([...view.rows.keys()], [mover.id]); // the old week's row left; the moved one stayed
    assert.ok(!view.rows.has(stays.id));
  });

  test('a new range the server refuses leaves the follow on the range it had', async () => {
    const range = week();
    const refused = week();
    const row = await book(range.start + 3600);
    const asked = [];
    const refusing = async (url, init) => {
      if (String(url).includes('/api/appointments')) asked.push(String(url));
      if (String(url).includes(`start=${refused.start}`)) {
        return new Response('{"code":"rest_invalid_param","message":"no","data":{"status":400}}',
          {status: 400, headers: {'Content-Type': 'application/json'}});
      }
      return fetch(url, init);
    };
    const view = follow('appointments', {...common, token: adminToken, ...range, fetch: refusing});
    views.push(view);
    await view.ready;
    await assert.rejects(view.setRange(refused), (err) => err instanceof SnapshotError && err.status === 400);
    const before = asked.length;
    await view.setRange(range); // the range it has: nothing to load
    assert.equal(asked.length, before);
    await api('PATCH', `/api/appointments/${row.id}`, {status: 'paid'});
    await until('the update', () => view.rows.get(row.id)?.status === 'paid');
    assert.deepEqual([...view.rows.keys()], [row.id]);
  });

  test('a snapshot answered 429 is tried again after its Retry-After', async () => {
    const range = week();
    const row = await book(range.start + 3600);
    let refused = 0;
    const busyOnce = async (url, init) => {
      if (String(url).includes('/api/appointments') && refused++ === 0) {
        return new Response(JSON.stringify({code: 'rest_too_many_snapshots', message: 'Too many snapshots.',
          data: {status: 429}}), {status: 429, headers: {'Retry-After': '1', 'Content-Type': 'application/json'}});
      }
      return fetch(url, init);
    };
    const retries = [];
    const view = follow('appointments', {...common, token: adminToken, ...range, fetch: busyOnce},
      {onRetry: (retry) => retries.push(retry)});
    views.push(view);
    const began = Date.now();
    await view.ready;
    assert.ok(Date.now() - began >= 1000);
    assert.equal(retries.length, 1);
    assert.equal(retries[0].resource, 'appointments');
    assert.ok(retries[0].error instanceof SnapshotError && retries[0].error.status === 429);
    assert.ok(retries[0].delayMs >= 1000);
    assert.deepEqual([...view.rows.keys()], [row.id]);
  });

  test('a refused snapshot rejects ready with a SnapshotError', async () => {
    const errors = [];
    const view = follow('appointments', {...common, token: 'not-a-jwt', ...week()},
      {onError: (e) => errors.push(e)});
    views.push(view);
    await assert.rejects(view.ready, (err) => err instanceof SnapshotError && err.status === 401);
    assert.equal(errors.length, 1);
    assert.equal(view.status, null);
  });

  test('a snapshot that never answers is given up after snapshotTimeout and tried again', async () => {
    const range = week();
    const row = await book(range.start + 3600);
    let hung = 0;
    // The first snapshot request is accepted and never answered (a
    // half-open connection): only its abort signal ends it, as with fetch.
    const hangOnce = (url, init) => {
      if (String(url).includes('/api/appointments') && hung++ === 0) {
        return new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
      }
      return fetch(url, init);
    };
    const retries = [];
    const view = follow('appointments', {...common, token: adminToken, ...range, fetch: hangOnce, snapshotTimeout: 0.5},
      {onRetry: (retry) => retries.push(retry)});
    views.push(view);
    await view.ready;
    assert.equal(retries.length, 1);
    assert.match(String(retries[0].error.message), /no answer within 0.5 s/);
    assert.deepEqual([...view.rows.keys()], [row.id]);
    assert.throws(() => follow('appointments', {...common, snapshotTimeout: 0}), /snapshotTimeout/);
  });

  test('refused for one resource, it stops retrying the other', async () => {
    let outages = 0;
    const flaky = async (url, init) => {
      if (String(url).includes('/api/availabilities')) {
        outages++;
        return new Response('{"code":"rest_unavailable","message":"down","data":{"status":503}}',
          {status: 503, headers: {'Content-Type': 'application/json'}});
      }
      if (String(url).includes('/api/appointments')) {
        return new Response('{"code":"rest_forbidden","message":"no","data":{"status":403}}',
          {status: 403, headers: {'Content-Type': 'application/json'}});
      }
      return fetch(url, init);
    };
    const view = follow(['appointments', 'availabilities'], {...common, token: adminToken, ...week(), fetch: flaky});
    views.push(view);
    await assert.rejects(view.ready, (err) => err instanceof SnapshotError && err.status === 403);
    const asked = outages;
    await new Promise((resolve) => setTimeout(resolve, 2500)); // past two backoffs
    assert.equal(outages, asked);
  });
});

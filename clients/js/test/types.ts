// A program written against the public types, compiled by `tsc --strict`
// (npm run typecheck): the types resolve through package.json `exports`
// and say what a caller gets. Never run.
import {EventSource} from 'eventsource';
import {follow, subscribe, SnapshotError, type AppointmentRow, type SseEvent, type Status} from 'tornado-sse';

const statuses: Status[] = [];
const sub = subscribe({topics: ['appointment.*'], since: 41, baseUrl: 'http://127.0.0.1:8888',
  token: 'a-jwt', EventSource, heartbeat: 15},
(event: SseEvent) => { const id: number = event.id; void id; },
{onStatus: (s) => statuses.push(s), onReset: (lastId: number) => void lastId});
const leading: boolean = sub.leader;
void leading;
sub.close();

const view = follow('appointments', {start: new Date(), end: '2026-12-31T00:00:00Z', staffId: 5,
  baseUrl: 'http://127.0.0.1:8888', EventSource}, {
  onChange(rows, change) {
    const first: AppointmentRow | undefined = rows.values().next().value;
    const start: number | undefined = first?.start;
    void start;
    if (change.type === 'delete') { const gone: null = change.row; void gone; }
    if (change.type === 'insert') { const status: AppointmentRow['status'] = change.row.status; void status; }
  },
  onError(error) { if (error instanceof SnapshotError) { const code: number = error.status; void code; } },
});
view.ready.then(() => view.setRange({start: 0, end: 86400})).then(() => view.close());

// Both resources over one stream: each set by name, changes say whose.
const desk = follow(['appointments', 'availabilities'], {baseUrl: 'http://127.0.0.1:8888', EventSource}, {
  onEvent(event, fresh: boolean) { void event.id; void fresh; },
  onChange(rows, change) { if (change.type !== 'snapshot') { const was = change.old; void was; } void rows; },
  onRetry({resource, delayMs}) { const r: 'appointments' | 'availabilities' = resource; void r; void delayMs; },
  onReset(lastId: number) { void lastId; },
});
const booked: ReadonlyMap<number, AppointmentRow> = desk.of('appointments');
void booked;
void desk.leader;
desk.close();
// @ts-expect-error: only the two resources of SPEC §5 can be followed
follow('customers', {});
// A browser's own EventSource fits too.
subscribe({EventSource: globalThis.EventSource}, () => {}).close();

import { useEffect, useState } from 'preact/hooks';
import { type SessionState, SignInLinks } from './account';
import {
  type Federation,
  type Lab,
  type LabProgress,
  federation,
  labLogs,
  labs,
  restartLab,
  startLab,
  stopLab,
} from './api';

const FINAL = new Set(['running', 'stopped', 'failed']);

/// The collections asked for in the address (`#/labs?data=a,b`), as "Open in a lab" links.
function askedFor(): string[] {
  const query = location.hash.split('?')[1] ?? '';
  const data = new URLSearchParams(query).get('data');
  return data ? data.split(',').filter(Boolean) : [];
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const ORDER = ['pending', 'placed', 'provisioning', 'starting', 'running', 'stopping', 'stopped', 'failed'];

/// `lab` put in the list, unless the list knows a later state of the same run (a step that
/// arrived after the answer it led to).
function upsert(list: Lab[] | null, lab: Lab): Lab[] {
  const known = (list ?? []).find((l) => l.id === lab.id);
  const restarted = known && (known.state === 'stopped' || known.state === 'failed');
  if (known && !restarted && ORDER.indexOf(lab.state) < ORDER.indexOf(known.state)) return list ?? [];
  const rest = (list ?? []).filter((l) => l.id !== lab.id);
  return [lab, ...rest].sort((a, b) => b.created_at - a.created_at);
}

/// Labs: start one next to the data, watch it start, open it, stop it.
export function LabsPage({ session }: { session: SessionState }) {
  if (session.kind === 'asking') return <p class="status" role="status">Asking who you are…</p>;
  if (session.kind === 'failed') return <p class="error" role="alert">{session.why}</p>;
  if (session.kind === 'signed-out') {
    return (
      <section aria-labelledby="labs-title">
        <h1 id="labs-title">Labs</h1>
        <p>A lab is a Jupyter server started where your data lives. Sign in to start one.</p>
        <p>
          <SignInLinks providers={session.providers} />
        </p>
      </section>
    );
  }
  return <YourLabs />;
}

/// One entry per collection of the federation, with the members holding it.
function collections(view: Federation | null): { id: string; title: string; holders: string[] }[] {
  const byId = new Map<string, { id: string; title: string; holders: string[] }>();
  for (const m of view?.members ?? []) {
    for (const c of m.collections) {
      const entry = byId.get(c.id) ?? { id: c.id, title: c.title, holders: [] };
      entry.holders.push(m.name);
      byId.set(c.id, entry);
    }
  }
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}

function YourLabs() {
  const [list, setList] = useState<Lab[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [view, setView] = useState<Federation | null>(null);
  const [chosen, setChosen] = useState<Set<string>>(() => new Set(askedFor()));
  const [environment, setEnvironment] = useState('jupyter');
  const [starting, setStarting] = useState(false);
  const [steps, setSteps] = useState<Record<string, string[]>>({});
  const [logs, setLogs] = useState<Record<string, string>>({});
  const [live, setLive] = useState(false);

  useEffect(() => {
    labs()
      .then(setList)
      .catch((e) => setError(message(e)));
    federation()
      .then(setView)
      .catch((e) => setError(`The federation could not be read: ${message(e)}`));
    // Every step of your labs as it happens, here and on the nodes running them.
    const events = new EventSource('/api/v1/labs/events');
    events.addEventListener('open', () => setLive(true));
    events.addEventListener('error', () => setLive(false));
    events.addEventListener('lab', (ev) => {
      const p = JSON.parse((ev as MessageEvent).data) as LabProgress;
      setList((prev) => upsert(prev, p.lab));
      const line = p.detail ? `${p.lab.state}: ${p.detail}` : p.lab.state;
      setSteps((prev) => {
        const before = prev[p.lab.id] ?? [];
        if (before[before.length - 1] === line) return prev;
        return { ...prev, [p.lab.id]: [...before, line].slice(-12) };
      });
    });
    return () => events.close();
  }, []);

  const environments = [
    ...new Set((view?.members ?? []).flatMap((m) => m.compute.map((c) => c.environment)).concat('jupyter')),
  ];
  const offered = collections(view);
  const nodeNames = new Map((view?.members ?? []).map((m) => [m.short, m.name]));

  const start = async (e: Event) => {
    e.preventDefault();
    setStarting(true);
    setError(null);
    try {
      const lab = await startLab(environment, [...chosen]);
      setList((prev) => upsert(prev, lab));
      if (lab.state === 'failed') setError(`The lab failed to start: ${lab.reason ?? 'no reason given'}`);
    } catch (err) {
      setError(message(err));
    } finally {
      setStarting(false);
    }
  };

  const act = async (what: () => Promise<Lab>) => {
    setError(null);
    try {
      const lab = await what();
      setList((prev) => upsert(prev, lab));
    } catch (err) {
      setError(message(err));
    }
  };

  const showLogs = async (id: string) => {
    try {
      const text = await labLogs(id);
      setLogs((prev) => ({ ...prev, [id]: text || '(no output yet)' }));
    } catch (err) {
      setError(message(err));
    }
  };

  const toggle = (id: string) => {
    const next = new Set(chosen);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setChosen(next);
  };

  return (
    <section aria-labelledby="labs-title">
      <h1 id="labs-title">Labs</h1>
      <form class="new-lab" onSubmit={(e) => void start(e)} aria-busy={starting}>
        <label>
          Environment
          <select value={environment} onChange={(e) => setEnvironment((e.target as HTMLSelectElement).value)}>
            {environments.map((env) => (
              <option value={env} key={env}>
                {env}
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Data volume (read-only at /data)</legend>
          {offered.length === 0 && <span class="muted">No collections are published in the federation yet.</span>}
          {offered.map((c) => (
            <label class="check" key={c.id}>
              <input type="checkbox" checked={chosen.has(c.id)} onChange={() => toggle(c.id)} />
              {c.title} <span class="sub">({c.id}, at {c.holders.join(', ')})</span>
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={starting}>
          {starting ? 'Starting…' : 'Start a lab'}
        </button>
        <p class="note">It starts at the member holding the data you choose; your notebooks stay in its workspace.</p>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p class="status" role="status">
        {list === null ? 'Loading your labs…' : `${list.length} lab${list.length === 1 ? '' : 's'}`}
        {live ? '' : ' (not live: reload the page if states stop changing)'}
      </p>
      {list && list.length > 0 && (
        <table class="labs">
          <thead>
            <tr>
              <th scope="col">Lab</th>
              <th scope="col">Data</th>
              <th scope="col">Runs at</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((lab) => (
              <tr key={lab.id} data-lab={lab.id}>
                <td>
                  {lab.id}
                  <div class="sub">{lab.environment}</div>
                </td>
                <td>{lab.datasets.join(', ') || '—'}</td>
                <td title={`node ${lab.node}`}>{nodeNames.get(lab.node) ?? lab.node}</td>
                <td>
                  <span class={`state state-${lab.state}`}>{lab.state}</span>
                  {!FINAL.has(lab.state) && steps[lab.id] && (
                    <ol class="steps" aria-label={`Steps of ${lab.id}`}>
                      {steps[lab.id].map((s, i) => (
                        <li key={i}>{s}</li>
                      ))}
                    </ol>
                  )}
                  {lab.reason && <div class="reason">{lab.reason}</div>}
                  {lab.notice && <div class="warning">{lab.notice}</div>}
                  {logs[lab.id] !== undefined && <pre class="logs">{logs[lab.id]}</pre>}
                </td>
                <td class="actions">
                  {lab.state === 'running' && (
                    <a class="open" href={`/api/v1/labs/${encodeURIComponent(lab.id)}/open`} target="_blank" rel="noopener">
                      Open
                    </a>
                  )}
                  {!['stopped', 'failed', 'stopping'].includes(lab.state) && (
                    <button type="button" onClick={() => void act(() => stopLab(lab.id))}>
                      Stop
                    </button>
                  )}
                  {(lab.state === 'stopped' || lab.state === 'failed') && (
                    <button type="button" onClick={() => void act(() => restartLab(lab.id))}>
                      Start again
                    </button>
                  )}
                  <button type="button" onClick={() => void showLogs(lab.id)}>
                    Logs
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// What runs at the data leave on a page: outputs (those stored beside the project fetched in
// their place), the checked record of the run that made them, and the form that queues a
// notebook as a job.
import { useEffect, useState } from 'preact/hooks';
import { type RunRecordView, storedOutput, submitJob } from './api';
import { output } from './render';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function Html({ html, class: cls }: { html: string; class?: string }) {
  // The HTML was sanitised (or made from escaped text) where it was rendered.
  return <div class={cls} dangerouslySetInnerHTML={{ __html: html }} />;
}

/// Outputs with those stored beside the project (large ones) fetched in their place; one that
/// cannot be had says so where it would be.
async function resolved(project: string, outputs: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const o of outputs) {
    if (o.output_type !== 'orrery:stored' && o.output_type !== 'orrery:stored-list') {
      out.push(o);
      continue;
    }
    try {
      const stored = await storedOutput(project, String(o.blake3));
      if (Array.isArray(stored)) out.push(...stored);
      else out.push(stored);
    } catch (e) {
      out.push({ output_type: 'stream', name: 'stderr', text: `An output of ${String(o.bytes)} bytes cannot be shown: ${message(e)}\n` });
    }
  }
  return out;
}

export function Outputs({ project: id, outputs }: { project: string; outputs: Record<string, unknown>[] }) {
  const [rendered, setRendered] = useState<{ kind: string; html: string }[] | null>(null);
  useEffect(() => {
    let live = true;
    void resolved(id, outputs)
      .then((all) => Promise.all(all.map(output)))
      .then((r) => live && setRendered(r));
    return () => {
      live = false;
    };
  }, [id, outputs]);
  if (outputs.length === 0 || rendered === null) return null;
  return (
    <div class="outputs">
      {rendered.map((o, i) => (
        <Html key={i} class={`output ${o.kind}`} html={o.html} />
      ))}
    </div>
  );
}

export function nodeName(id: string, name: string | null): string {
  return name ?? `node ${id.slice(0, 8)}`;
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/// Where and how a cell's outputs were computed: the record the computing node signed, with
/// its requester's signed request, both checked by this node before it took them in.
export function Provenance({ run, name }: { run: RunRecordView; name: (author: string) => string }) {
  const at = nodeName(run.node, run.node_name);
  return (
    <details class="provenance">
      <summary>
        Computed at <strong>{at}</strong> for {name(run.requester)} · {run.status === 'ok' ? 'ok' : run.status} ·{' '}
        {seconds(run.ended_at_ms - run.started_at_ms)}
        {!run.source_current && <span class="stale"> · the source has changed since</span>}
        {!run.outputs_current && <span class="stale"> · these outputs were replaced since</span>}
      </summary>
      <dl>
        <dt>Signed by</dt>
        <dd>
          {at} (its node key), for the request {name(run.requester)} signed; both signatures were checked here
        </dd>
        <dt>Ran</dt>
        <dd>
          {new Date(run.started_at_ms).toLocaleString()}, for {seconds(run.ended_at_ms - run.started_at_ms)}
        </dd>
        <dt>Environment</dt>
        <dd>
          {run.environment} <span class="hash">lock {run.environment_lock}</span>
        </dd>
        <dt>Source</dt>
        <dd class="hash">blake3 {run.source_blake3.slice(0, 16)}…</dd>
        <dt>Data read</dt>
        <dd>
          {run.datasets.length === 0
            ? 'none recorded'
            : run.datasets.map((d) => (
                <div key={`${d.node}/${d.product}`}>
                  {d.product} at {d.node === run.node ? at : `node ${d.node.slice(0, 8)}`} <span class="hash">blake3 {d.blake3.slice(0, 16)}…</span>
                </div>
              ))}
        </dd>
      </dl>
    </details>
  );
}

/// `name = value` lines as a job's parameters: each value read as JSON, else as text.
function parameters(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const name = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (!name) continue;
    try {
      out[name] = JSON.parse(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

/// "Run as a job": the notebook run whole at the data, once or on a schedule.
export function JobForm({ project: id, notebook: nb }: { project: string; notebook: string }) {
  const [text, setText] = useState('');
  const [every, setEvery] = useState('');
  const [said, setSaid] = useState<{ ok: boolean; text: string } | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    const secs = every.trim() === '' ? null : Number(every);
    submitJob(id, nb, parameters(text), secs)
      .then((j) => setSaid({ ok: true, text: `Job ${j.id} is queued; its runs show on the Jobs page.` }))
      .catch((err) => setSaid({ ok: false, text: message(err) }));
  };
  return (
    <details class="job-form">
      <summary>Run as a job</summary>
      <form onSubmit={submit}>
        <label>
          Parameters, one <code>name = value</code> a line (injected after the cell tagged <code>parameters</code>)
          <textarea rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <label>
          Repeat every (seconds; empty: once)
          <input inputMode="numeric" value={every} onInput={(e) => setEvery(e.currentTarget.value)} />
        </label>
        <button type="submit">Queue the job</button>
      </form>
      {said && (
        <p class={said.ok ? 'status' : 'error'} role={said.ok ? 'status' : 'alert'}>
          {said.text} {said.ok && <a href="#/jobs">Jobs</a>}
        </p>
      )}
    </details>
  );
}


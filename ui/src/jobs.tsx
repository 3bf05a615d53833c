import { useEffect, useState } from 'preact/hooks';
import { type JobRunView, type JobView, cancelJob, jobRuns, jobs } from './api';
import { Outputs, seconds } from './runs';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function params(p: [string, string][]): string {
  return p.length === 0 ? 'no parameters' : p.map(([k, v]) => `${k} = ${v}`).join(', ');
}

/// A run as the node that made it signed it.
function Run({ project, r }: { project: string; r: JobRunView }) {
  return (
    <details class="job-run" data-run={r.run}>
      <summary>
        Run {r.run} · <span class={r.status === 'ok' ? 'ok' : 'stale'}>{r.status}</span> · {seconds(r.ended_at_ms - r.started_at_ms)} · at node{' '}
        {r.node.slice(0, 8)} · {r.verified ? 'signature checked' : 'signature does not hold'}
      </summary>
      <p class="sub">
        {params(r.parameters)} · {r.environment} <span class="hash">lock {r.environment_lock}</span>
        {r.datasets.length > 0 && <> · read {r.datasets.map((d) => d.split(' ')[0]).join(', ')}</>}
      </p>
      {r.cells.map((c) => (
        <div key={c.cell} class="job-cell" data-cell={c.cell}>
          <div class="sub">
            cell {c.cell} · {c.status}
          </div>
          <Outputs project={project} outputs={c.outputs} />
        </div>
      ))}
    </details>
  );
}

function Job({ job, onChange }: { job: JobView; onChange: (j: JobView) => void }) {
  const [runs, setRuns] = useState<JobRunView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    jobRuns(job.id)
      .then(setRuns)
      .catch((e) => setError(message(e)));
  }, [job.id, job.runs]);
  return (
    <li class="job" data-job={job.id}>
      <div>
        <strong>{job.id}</strong> <span class={`state state-${job.state}`}>{job.state}</span> · notebook {job.notebook.slice(0, 8)} · {params(job.parameters)}
        {job.every_secs !== null && <> · every {job.every_secs} s</>} · {job.runs} run{job.runs === 1 ? '' : 's'}
        {(job.state === 'queued' || job.state === 'running') && (
          <button
            type="button"
            onClick={() =>
              cancelJob(job.id)
                .then(onChange)
                .catch((e) => setError(message(e)))
            }
          >
            Cancel
          </button>
        )}
      </div>
      {job.note && <p class="note">{job.note}</p>}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {runs?.map((r) => <Run key={r.run} project={job.project} r={r} />)}
    </li>
  );
}

/// The signed-in user's jobs on this node: their runs, each with its outputs and record.
export function JobsPage() {
  const [list, setList] = useState<JobView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      jobs()
        .then((j) => live && setList(j))
        .catch((e) => live && setError(message(e)));
    void load();
    // Runs end while the page is open: it looks again every few seconds.
    const every = setInterval(load, 3000);
    return () => {
      live = false;
      clearInterval(every);
    };
  }, []);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!list) return <p class="status" role="status">Loading jobs…</p>;
  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <p class="note">Notebooks run whole at the data, once or on a schedule. Start one from a notebook's "Run as a job".</p>
      {list.length === 0 && <p class="note">No jobs yet.</p>}
      <ul class="jobs">
        {list.map((j) => (
          <Job key={j.id} job={j} onChange={(c) => setList(list.map((x) => (x.id === c.id ? c : x)))} />
        ))}
      </ul>
    </section>
  );
}

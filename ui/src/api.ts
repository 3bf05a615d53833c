// The node's search API (POST /api/search): the query model and the answer, as the node's
// catalog crate defines them (orrery_catalog::{Query, FederatedResults}).

export type Facet =
  | 'Mission'
  | 'Instrument'
  | 'ProductType'
  | 'Band'
  | 'Licence'
  | 'Publisher'
  | 'Node';

export const FACETS: { key: Facet; label: string }[] = [
  { key: 'Mission', label: 'Mission' },
  { key: 'Instrument', label: 'Instrument' },
  { key: 'ProductType', label: 'Product type' },
  { key: 'Band', label: 'Band' },
  { key: 'Licence', label: 'Licence' },
  { key: 'Publisher', label: 'Publisher' },
  { key: 'Node', label: 'Node' },
];

export interface Cone {
  ra: number;
  dec: number;
  radius: number;
}

export interface TimeRange {
  start: number | null;
  end: number | null;
}

export interface Query {
  text: string | null;
  filters: Partial<Record<Facet, string[]>>;
  tags: string[];
  collections: string[];
  cone: Cone | null;
  time: TimeRange | null;
  sort: 'Relevance' | 'Time' | 'TimeDesc' | 'Title' | 'Id';
  page: { offset: number; limit: number };
  facets: boolean;
}

export interface Hit {
  node: string | null;
  node_name: string | null;
  collection: string;
  id: string;
  title: string;
  mission: string | null;
  instrument: string | null;
  product_type: string | null;
  band: string | null;
  target: string | null;
  ra: number | null;
  dec: number | null;
  t_min: number | null;
  t_max: number | null;
  size: number;
  blake3: string;
  licence: string | null;
  url?: string | null;
}

export interface FederatedResults {
  results: {
    total: number;
    hits: Hit[];
    facets: Partial<Record<Facet, { value: string; count: number }[]>>;
  };
  answered: string[];
  missing: [string, string][];
  not_asked: number;
}

/// Why a search failed, in words for the page.
export class SearchError extends Error {}

export async function search(query: Query, local: boolean, signal?: AbortSignal): Promise<FederatedResults> {
  let response: Response;
  try {
    response = await fetch(`/api/search?local=${local}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(query),
      signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new SearchError('The node did not answer. Is it running?');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message ?? body?.error ?? `the node answered ${response.status}`;
    throw new SearchError(String(message));
  }
  return body as FederatedResults;
}

/// Modified Julian Date of a calendar date (UTC midnight).
export function mjd(date: string): number | null {
  const t = Date.parse(`${date}T00:00:00Z`);
  return Number.isNaN(t) ? null : t / 86_400_000 + 40_587;
}

/// The calendar date of an MJD.
export function isoDate(mjdValue: number | null): string {
  if (mjdValue === null) return '';
  return new Date((mjdValue - 40_587) * 86_400_000).toISOString().slice(0, 10);
}

export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/// The signed-in user, as `GET /api/v1/me` tells.
export interface Me {
  user: string;
  name: string;
  author: string;
  scopes: string[];
  orcid: string | null;
}

/// A way to sign in (`GET /api/v1/providers`).
export interface SignInProvider {
  id: string;
  name: string;
  url: string;
}

/// This browser's session: who is signed in (`null`: nobody) and the ways to sign in.
export interface SessionView {
  signed_in: Me | null;
  providers: SignInProvider[];
}

export async function session(): Promise<SessionView> {
  const response = await fetch('/api/v1/session', { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`the node answered ${response.status} to /api/v1/session`);
  return (await response.json()) as SessionView;
}

/// Ends this browser's session on the node.
export async function signOut(): Promise<void> {
  const response = await fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' });
  if (!response.ok && response.status !== 401) {
    const body = await response.json().catch(() => null);
    throw new Error(String(body?.error?.message ?? `the node answered ${response.status}`));
  }
}

// The federation as this node sees it (GET /api/federation).
export interface Collection {
  id: string;
  title: string;
  products: number;
  bytes: number;
  missions: string[] | null;
  sky: number[];
  time: [number, number] | null;
  complete: boolean;
}

export interface Compute {
  environment: string;
  cores: number;
  memory_mib: number;
  gpus: number;
  free_slots: number;
}

export type Reach = { state: 'this_node' } | { state: 'connected' } | { state: 'last_seen'; at: number } | { state: 'never_seen' };

export interface Member {
  node: string;
  short: string;
  name: string;
  institution: string;
  reach: Reach;
  advert_issued_at: number | null;
  collections: Collection[];
  compute: Compute[];
}

export interface Federation {
  name: string;
  id: string;
  this_node: string;
  members: Member[];
}


export async function federation(signal?: AbortSignal): Promise<Federation> {
  const r = await fetch('/api/federation', { signal });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body?.error?.message ?? body?.error ?? `the node answered ${r.status}`);
  return body as Federation;
}

// Labs (the REST API's /api/v1/labs).

export interface Lab {
  id: string;
  environment: string;
  datasets: string[];
  state: string;
  reason: string | null;
  created_at: number;
  node: string;
  notice: string | null;
}

export interface LabProgress {
  lab: Lab;
  detail: string | null;
}

/// Why a call failed, in the node's words.
export class ApiFailure extends Error {}

async function answer<T>(r: Response): Promise<T> {
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiFailure(String(body?.error?.message ?? body?.error ?? `the node answered ${r.status}`));
  return body as T;
}

export async function labs(): Promise<Lab[]> {
  return answer<Lab[]>(await fetch('/api/v1/labs', { credentials: 'same-origin' }));
}

export async function startLab(environment: string, datasets: string[]): Promise<Lab> {
  return answer<Lab>(
    await fetch('/api/v1/labs', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ environment, datasets }),
    }),
  );
}

export async function stopLab(id: string): Promise<Lab> {
  return answer<Lab>(await fetch(`/api/v1/labs/${encodeURIComponent(id)}`, { method: 'DELETE', credentials: 'same-origin' }));
}

export async function restartLab(id: string): Promise<Lab> {
  return answer<Lab>(
    await fetch(`/api/v1/labs/${encodeURIComponent(id)}/start`, { method: 'POST', credentials: 'same-origin' }),
  );
}

export async function labLogs(id: string): Promise<string> {
  const r = await fetch(`/api/v1/labs/${encodeURIComponent(id)}/logs`, { credentials: 'same-origin' });
  if (!r.ok) await answer<never>(r);
  return r.text();
}

// Projects (the REST API's /api/v1/projects), read as the signed-in user or anonymously.

export interface ProjectSummary {
  id: string;
  title: string;
  visibility: string;
  role: string | null;
  notebooks: number;
}

export interface ProjectMember {
  author: string;
  name: string | null;
  role: string;
}

export interface ProjectView {
  id: string;
  title: string;
  description: string;
  visibility: string;
  created_at: number;
  role: string | null;
  members: ProjectMember[];
  notebooks: { id: string; title: string }[];
  heads: string[];
  datasets: { id: string; node: string; node_name: string | null; product: string; checksum: string; added_by: string | null }[];
  /** The pinned lab environment (`jupyter-<hash>`), if the project is pinned. */
  environment?: string | null;
}

/// The checked record of the run that wrote a cell's outputs.
export interface RunRecordView {
  node: string;
  node_name: string | null;
  requester: string;
  status: string;
  started_at_ms: number;
  ended_at_ms: number;
  environment: string;
  environment_lock: string;
  source_blake3: string;
  source_current: boolean;
  outputs_current: boolean;
  datasets: { node: string; product: string; blake3: string }[];
}

export interface RunView {
  cell: CellView;
  node: string;
  node_name: string | null;
  lab: string;
  status: string;
  started_at_ms: number;
  ended_at_ms: number;
}

export interface CellView {
  id: string;
  kind: string;
  source: string;
  outputs: Record<string, unknown>[];
  execution_count: number | null;
  run?: RunRecordView | null;
}

export interface NotebookView {
  id: string;
  title: string;
  cells: CellView[];
}

export interface NotebookAuthorship {
  notebook: string;
  cells: { cell: string; spans: { author: string | null; text: string }[] }[];
}

export interface Share {
  author: string;
  name: string | null;
  chars: number;
  changes: number;
  orcid_verified: string | null;
}

export interface CreditsView {
  authors: Share[];
  notebooks: { notebook: string; title: string; authors: Share[] }[];
}

export interface ChangeView {
  hash: string;
  author: string | null;
  time: number;
  seq: number;
  ops: number;
}

export interface CommentView {
  id: string;
  target: string;
  text: string;
  author: string | null;
  created_at: number;
}

async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { credentials: 'same-origin' }));
}

const P = (id: string) => `/api/v1/projects/${encodeURIComponent(id)}`;

export const projects = () => get<ProjectSummary[]>('/api/v1/projects');
export const project = (id: string) => get<ProjectView>(P(id));
export const notebook = (id: string, nb: string) => get<NotebookView>(`${P(id)}/notebooks/${encodeURIComponent(nb)}`);
export const authorship = (id: string, nb: string) =>
  get<NotebookAuthorship>(`${P(id)}/notebooks/${encodeURIComponent(nb)}/authorship`);
export const credits = (id: string) => get<CreditsView>(`${P(id)}/credits`);
export const history = (id: string) => get<ChangeView[]>(`${P(id)}/history`);
export const comments = (id: string) => get<CommentView[]>(`${P(id)}/comments`);
export const storedOutput = (id: string, blake3: string) =>
  get<Record<string, unknown> | Record<string, unknown>[]>(`${P(id)}/outputs/${encodeURIComponent(blake3)}`);
export const ipynbUrl = (id: string, nb: string) => `${P(id)}/notebooks/${encodeURIComponent(nb)}/ipynb`;

/// Adds a collection to a running lab, read-only at `/data/<collection>`.
export async function addToLab(id: string, dataset: string): Promise<Lab> {
  return answer<Lab>(
    await fetch(`/api/v1/labs/${encodeURIComponent(id)}/datasets`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataset }),
    }),
  );
}

/// Adds a cell at `index` (the end if not given).
export async function addCell(id: string, nb: string, kind: string, index?: number): Promise<CellView> {
  return answer<CellView>(
    await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/cells`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind, source: '', index }),
    }),
  );
}

/// Deletes a cell.
export async function deleteCell(id: string, nb: string, cell: string): Promise<void> {
  const r = await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/cells/${encodeURIComponent(cell)}`, {
    method: 'DELETE',
    credentials: 'same-origin',
  });
  if (!r.ok) await answer<unknown>(r);
}

/// Moves a cell to `index` in the order without it.
export async function moveCell(id: string, nb: string, cell: string, index: number): Promise<NotebookView> {
  return answer<NotebookView>(
    await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/cells/${encodeURIComponent(cell)}/move`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ index }),
    }),
  );
}

/// Imports a Jupyter notebook file as a new notebook.
export async function importNotebook(id: string, title: string, file: unknown): Promise<NotebookView> {
  return answer<NotebookView>(
    await fetch(`${P(id)}/notebooks/import`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title, notebook: file }),
    }),
  );
}

export interface Reimported {
  summary: string;
  notebook: NotebookView;
}

/// Updates a notebook in place from a newer version of its file.
export async function reimportNotebook(id: string, nb: string, file: unknown): Promise<Reimported> {
  return answer<Reimported>(
    await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/ipynb`, {
      method: 'PUT',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(file),
    }),
  );
}

/// Runs a code cell at the data (at the node holding the project's datasets), handing each
/// output to `seen` as it arrives; answers with the run once it is recorded.
export async function runCell(
  id: string,
  nb: string,
  cell: string,
  seen: (output: Record<string, unknown>) => void,
): Promise<RunView> {
  const r = await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/cells/${encodeURIComponent(cell)}/run`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { accept: 'application/x-ndjson' },
  });
  if (!r.ok || !r.body) return answer<RunView>(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffered.slice(0, nl)) as
        | { output: Record<string, unknown> }
        | { run: RunView }
        | { error: { status: number; error: string } };
      buffered = buffered.slice(nl + 1);
      if ('output' in line) seen(line.output);
      else if ('run' in line) return line.run;
      else throw new ApiFailure(line.error.error);
    }
  }
  throw new ApiFailure('the node stopped answering before the run ended; its outputs, if any, are recorded in the project');
}

/// Interrupts what the caller's kernel for a notebook runs, or restarts it.
export async function kernel(id: string, nb: string, action: 'interrupt' | 'restart'): Promise<void> {
  const r = await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/kernel/${action}`, {
    method: 'POST',
    credentials: 'same-origin',
  });
  if (!r.ok) await answer<unknown>(r);
}

// Pipelines (the REST API's /api/v1/jobs).

export interface JobView {
  id: string;
  project: string;
  notebook: string;
  parameters: [string, string][];
  every_secs: number | null;
  next_at: number | null;
  state: string;
  runs: number;
  note: string;
  created_at: number;
}

export interface JobRunView {
  run: number;
  node: string;
  verified: boolean;
  status: string;
  parameters: [string, string][];
  heads: string[];
  environment: string;
  environment_lock: string;
  datasets: string[];
  started_at_ms: number;
  ended_at_ms: number;
  cells: { cell: string; status: string; execution_count: number | null; outputs: Record<string, unknown>[] }[];
}

export const jobs = () => get<JobView[]>('/api/v1/jobs');
export const jobRuns = (id: string) => get<JobRunView[]>(`/api/v1/jobs/${encodeURIComponent(id)}/runs`);

/// Runs a notebook whole as a job at the data, once or every `everySecs` seconds.
export async function submitJob(
  id: string,
  nb: string,
  parameters: Record<string, unknown>,
  everySecs: number | null,
): Promise<JobView> {
  return answer<JobView>(
    await fetch(`${P(id)}/notebooks/${encodeURIComponent(nb)}/jobs`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ parameters, every_secs: everySecs }),
    }),
  );
}

/// Cancels a job: no further run starts.
export async function cancelJob(id: string): Promise<JobView> {
  return answer<JobView>(await fetch(`/api/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', credentials: 'same-origin' }));
}

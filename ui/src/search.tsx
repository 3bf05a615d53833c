import { useEffect, useRef, useState } from 'preact/hooks';
import {
  FACETS,
  type Facet,
  type FederatedResults,
  type Lab,
  type Query,
  SearchError,
  addToLab,
  bytes,
  isoDate,
  labs,
  mjd,
  search,
  session,
} from './api';
import { ResultsSky } from './sky';

const PAGE = 20;

interface Form {
  text: string;
  ra: string;
  dec: string;
  radius: string;
  from: string;
  to: string;
  local: boolean;
}

const EMPTY: Form = { text: '', ra: '', dec: '', radius: '', from: '', to: '', local: false };

/// The query a form and the chosen facet values stand for, or why it cannot be asked.
function toQuery(form: Form, filters: Partial<Record<Facet, string[]>>, offset: number): Query | string {
  const number = (s: string) => (s.trim() === '' ? null : Number(s));
  const [ra, dec, radius] = [number(form.ra), number(form.dec), number(form.radius)];
  const coneParts = [ra, dec, radius].filter((v) => v !== null).length;
  if (coneParts !== 0 && coneParts !== 3) return 'A cone needs RA, Dec and a radius.';
  if ([ra, dec, radius].some((v) => v !== null && !Number.isFinite(v))) return 'RA, Dec and radius are numbers of degrees.';
  const [start, end] = [form.from ? mjd(form.from) : null, form.to ? mjd(form.to) : null];
  const text = form.text.trim();
  return {
    text: text === '' ? null : text,
    filters,
    tags: [],
    collections: [],
    cone: coneParts === 3 ? { ra: ra!, dec: dec!, radius: radius! } : null,
    time: start === null && end === null ? null : { start, end },
    sort: text === '' ? 'TimeDesc' : 'Relevance',
    page: { offset, limit: PAGE },
    facets: true,
  };
}

export function SearchPage() {
  const [form, setForm] = useState<Form>(EMPTY);
  const [filters, setFilters] = useState<Partial<Record<Facet, string[]>>>({});
  const [offset, setOffset] = useState(0);
  const [answer, setAnswer] = useState<FederatedResults | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [asked, setAsked] = useState(0);
  const inFlight = useRef<AbortController | null>(null);
  // The signed-in user's running labs, which results can be added to.
  const [running, setRunning] = useState<Lab[]>([]);
  const [target, setTarget] = useState('');
  const [added, setAdded] = useState<string | null>(null);
  useEffect(() => {
    session()
      .then(async (s) => {
        if (!s.signed_in) return;
        const live = (await labs()).filter((l) => l.state === 'running');
        setRunning(live);
        if (live.length > 0) setTarget(live[0].id);
      })
      .catch(() => setRunning([]));
  }, []);
  const addTo = async (collection: string) => {
    setAdded(null);
    try {
      const lab = await addToLab(target, collection);
      setAdded(`${collection} is in lab ${lab.id}, read-only at /data/${collection}.`);
    } catch (e) {
      setAdded(`${collection} could not be added: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  useEffect(() => {
    if (asked === 0) return;
    const query = toQuery(form, filters, offset);
    if (typeof query === 'string') {
      setError(query);
      return;
    }
    inFlight.current?.abort();
    const controller = new AbortController();
    inFlight.current = controller;
    setBusy(true);
    setError(null);
    search(query, form.local, controller.signal)
      .then((r) => {
        setAnswer(r);
        setBusy(false);
      })
      .catch((e) => {
        if (controller.signal.aborted) return;
        setBusy(false);
        setError(e instanceof SearchError ? e.message : 'The search failed.');
      });
    return () => controller.abort();
  }, [asked, filters, offset]);

  const field = (key: keyof Form) => ({
    value: form[key] as string,
    onInput: (e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value }),
  });
  const submit = (e: Event) => {
    e.preventDefault();
    setOffset(0);
    setAsked(asked + 1);
  };
  const toggle = (facet: Facet, value: string) => {
    const current = filters[facet] ?? [];
    const next = current.includes(value) ? current.filter((v) => v !== value) : [...current, value];
    const copy = { ...filters };
    if (next.length === 0) delete copy[facet];
    else copy[facet] = next;
    setFilters(copy);
    setOffset(0);
    setAsked(asked + 1);
  };

  const results = answer?.results;
  const last = results ? Math.min(offset + PAGE, results.total) : 0;
  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search the federation</h1>
      <form class="search" onSubmit={submit} role="search">
        <label class="grow">
          <span>Text</span>
          <input type="search" name="text" placeholder="Crab Nebula, spectrum, M87 …" {...field('text')} />
        </label>
        <fieldset>
          <legend>Cone (degrees)</legend>
          <label><span>RA</span><input name="ra" inputMode="decimal" size={7} {...field('ra')} /></label>
          <label><span>Dec</span><input name="dec" inputMode="decimal" size={7} {...field('dec')} /></label>
          <label><span>Radius</span><input name="radius" inputMode="decimal" size={5} {...field('radius')} /></label>
        </fieldset>
        <fieldset>
          <legend>Observed</legend>
          <label><span>From</span><input type="date" name="from" {...field('from')} /></label>
          <label><span>To</span><input type="date" name="to" {...field('to')} /></label>
        </fieldset>
        <label class="check">
          <input
            type="checkbox"
            name="local"
            checked={form.local}
            onChange={(e) => setForm({ ...form, local: (e.target as HTMLInputElement).checked })}
          />
          <span>This node only</span>
        </label>
        <button type="submit">Search</button>
      </form>

      <p class="status" role="status" aria-live="polite">
        {busy ? 'Searching…' : results ? `${results.total} products` + (results.total > 0 ? `, ${offset + 1}–${last} shown` : '') : ''}
      </p>
      {error && <p class="error" role="alert">{error}</p>}
      {answer && answer.missing.length > 0 && (
        <div class="warning" role="alert">
          <strong>Not every node answered.</strong> Results from these nodes are missing:
          <ul>
            {answer.missing.map(([node, why]) => (
              <li key={node}>{node}: {why}</li>
            ))}
          </ul>
        </div>
      )}

      {results && (
        <div class="results">
          <aside class="facets" aria-label="Narrow by">
            {FACETS.map(({ key, label }) => {
              const values = results.facets[key] ?? [];
              if (values.length === 0) return null;
              return (
                <fieldset key={key}>
                  <legend>{label}</legend>
                  {values.map((v) => (
                    <label class="check" key={v.value}>
                      <input
                        type="checkbox"
                        checked={(filters[key] ?? []).includes(v.value)}
                        onChange={() => toggle(key, v.value)}
                      />
                      <span>{v.value}</span> <span class="count">{v.count}</span>
                    </label>
                  ))}
                </fieldset>
              );
            })}
          </aside>
          <div class="hits">
            <ResultsSky
              hits={results.hits}
              cone={(() => {
                const q = toQuery(form, filters, offset);
                return typeof q === 'string' ? null : q.cone;
              })()}
              onPick={(ra, dec) => setForm({ ...form, ra: String(ra), dec: String(dec), radius: form.radius || '1' })}
            />
            {running.length > 0 && (
              <div class="to-volume">
                <label>
                  Add results to the data volume of{' '}
                  <select value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
                    {running.map((l) => (
                      <option value={l.id} key={l.id}>
                        {l.id} ({l.datasets.join(', ') || 'no data yet'})
                      </option>
                    ))}
                  </select>
                </label>
                {added && (
                  <span class="note" role="status">
                    {added}
                  </span>
                )}
              </div>
            )}
            <table>
              <caption class="sr-only">Products found</caption>
              <thead>
                <tr>
                  <th scope="col">Product</th>
                  <th scope="col">Target</th>
                  <th scope="col">Mission</th>
                  <th scope="col">Observed</th>
                  <th scope="col">Node</th>
                  <th scope="col">Size</th>
                  <th scope="col">
                    <span class="sr-only">Labs</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {results.hits.map((h) => (
                  <tr key={`${h.node}/${h.id}`}>
                    <td>
                      {h.url ? <a href={h.url}>{h.title}</a> : h.title}
                      <div class="sub">{h.id}</div>
                    </td>
                    <td>{h.target ?? ''}</td>
                    <td>{[h.mission, h.instrument].filter(Boolean).join(' · ')}</td>
                    <td>{isoDate(h.t_min)}</td>
                    <td>{h.node_name ?? h.node ?? ''}</td>
                    <td class="num">{bytes(h.size)}</td>
                    <td>
                      <a
                        class="to-lab"
                        href={`#/labs?data=${encodeURIComponent(h.collection)}`}
                        aria-label={`Open in a lab: collection ${h.collection}`}
                      >
                        Open in a lab
                      </a>
                      {running.length > 0 && (
                        <button
                          type="button"
                          class="add-volume"
                          aria-label={`Add to data volume: collection ${h.collection}`}
                          onClick={() => void addTo(h.collection)}
                        >
                          Add to data volume
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <nav class="pager" aria-label="Pages">
              <button type="button" disabled={offset === 0 || busy} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                Previous
              </button>
              <button type="button" disabled={last >= results.total || busy} onClick={() => setOffset(offset + PAGE)}>
                Next
              </button>
            </nav>
            {answer.not_asked > 0 && (
              <p class="note">{answer.not_asked} member nodes were not asked: their adverts show they hold nothing that can match.</p>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

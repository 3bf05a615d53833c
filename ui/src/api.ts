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

// Live co-editing of one notebook with the node, over a WebSocket.
//
// This browser holds no replica. It keeps, per cell, the text of the version it last heard of
// (`confirmed`), the edit it sent and awaits (`inflight`) and what was typed since (`buffer`).
// What the user sees is confirmed + inflight + buffer. An edit is sent against the version the
// browser holds; the node makes it at that version, so it merges with everything since, and
// answers with what changed from it to now. Updates that arrive while an edit is in flight are
// dropped: the answer to the edit covers them. When the connection drops, typing goes on; on
// return the node says whether the edit in flight was made and what changed meanwhile.

import type { CellView, NotebookView } from './api';

/** `[position, deleted, inserted]`, positions in Unicode code points. */
export type Splice = [number, number, string];

interface CellSplices {
  cell: string;
  splices: Splice[];
}

interface Delta {
  heads: string[];
  texts: CellSplices[];
  cells: CellView[];
  removed: string[];
  order: string[] | null;
  presence: Presence[] | null;
}

export interface Presence {
  author: string;
  name: string;
  node: string;
  cell: string | null;
  /** Their caret in the cell's text at the version the message that told it brought. */
  caret: number | null;
}

/** Someone's caret where this page shows it: a position (code points) in the text shown. */
export interface ShownCaret {
  author: string;
  name: string;
  pos: number;
}

interface Hello {
  heads: string[];
  notebook: NotebookView;
  author: string;
  landed: boolean;
  delta: Delta | null;
}

type FromNode =
  | ({ type: 'hello' } & Hello)
  | ({ type: 'ack' } & Delta)
  | ({ type: 'update' } & Delta)
  | { type: 'refused'; message: string; resync: boolean };

/** How often, at most, the caret's place is said while it moves (milliseconds). */
const CARET_MS = 150;

export type LiveState = 'connecting' | 'live' | 'offline' | 'stopped';

/** Applies splices, in order, to a text (code points). */
export function apply(text: string, splices: Splice[]): string {
  const chars = Array.from(text);
  for (const [pos, del, ins] of splices) chars.splice(pos, del, ...Array.from(ins));
  return chars.join('');
}

/** Where a position in a text is once `splices` are applied to it. */
export function forward(pos: number, splices: Splice[]): number {
  for (const [at, del, ins] of splices) {
    if (pos <= at) continue;
    pos = pos >= at + del ? pos - del + Array.from(ins).length : at;
  }
  return pos;
}

/** Where a position in a text made by `splices` was before they were applied (a position in
 * inserted text goes to just after the insertion, so that it stays beside the same character
 * once the insertion is made). */
export function backward(pos: number, splices: Splice[]): number {
  for (let i = splices.length - 1; i >= 0; i--) {
    const [at, del, ins] = splices[i];
    const n = Array.from(ins).length;
    if (pos <= at) continue;
    pos = pos >= at + n ? pos - n + del : at + del;
  }
  return pos;
}

/** The one splice that turns `before` into `after` (a single typed or pasted change). */
export function spliceOf(before: string, after: string): Splice | null {
  const a = Array.from(before);
  const b = Array.from(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let end = 0;
  while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
  if (start === a.length && start === b.length) return null;
  return [start, a.length - start - end, b.slice(start, b.length - end).join('')];
}

/** A character of the common text, or one inserted on one side. */
type Token = { id: number } | { ch: string; mine: boolean };

function tokens(text: string, splices: Splice[], mine: boolean): Token[] {
  const out: Token[] = Array.from(text).map((_, id) => ({ id }));
  for (const [pos, del, ins] of splices) out.splice(pos, del, ...Array.from(ins).map((ch) => ({ ch, mine })));
  return out;
}

/**
 * Rebases `local` (splices made on `base`) over `remote` (splices also made on `base`): the
 * splices that make on base + remote what local made on base. Local insertions stay after the
 * character they followed; what either side deleted stays deleted.
 */
export function rebase(base: string, local: Splice[], remote: Splice[]): Splice[] {
  if (local.length === 0) return [];
  if (remote.length === 0) return local;
  const mine = tokens(base, local, true);
  const theirs = tokens(base, remote, false);
  const kept = new Set<number>();
  for (const t of mine) if ('id' in t) kept.add(t.id);
  const survives = new Set<number>();
  for (const t of theirs) if ('id' in t) survives.add(t.id);
  // Local insertions, by the common character they follow (-1: the start).
  const after = new Map<number, string[]>();
  let anchor = -1;
  for (const t of mine) {
    if ('id' in t) {
      if (survives.has(t.id)) anchor = t.id;
    } else {
      const run = after.get(anchor) ?? [];
      run.push(t.ch);
      after.set(anchor, run);
    }
  }
  // Walk base + remote, making the splices: delete what local deleted, insert its runs.
  const out: Splice[] = [];
  let pos = 0;
  const insert = (id: number) => {
    const run = after.get(id);
    if (run) {
      out.push([pos, 0, run.join('')]);
      pos += run.length;
    }
  };
  insert(-1);
  for (const t of theirs) {
    if ('id' in t) {
      if (!kept.has(t.id)) {
        out.push([pos, 1, '']);
      } else {
        pos += 1;
      }
      insert(t.id);
    } else {
      pos += 1;
    }
  }
  return merge(out);
}

/** Joins adjacent single-character deletions, so that a message stays small. */
function merge(splices: Splice[]): Splice[] {
  const out: Splice[] = [];
  for (const s of splices) {
    const last = out[out.length - 1];
    if (last && s[2] === '' && last[2] === '' && s[0] === last[0]) last[1] += s[1];
    else out.push([...s] as Splice);
  }
  return out;
}

/** Something the user should know about their edits. */
export interface Notice {
  message: string;
  /** Text the user typed that could not be kept, to copy. */
  lost?: string;
}

export interface LiveView {
  state: LiveState;
  cells: CellView[];
  text: (cell: string) => string;
  presence: Presence[];
  /** Others' carets in a cell, where the text shown has them. */
  carets: (cell: string) => ShownCaret[];
  /** Edits not yet confirmed by the node. */
  pending: number;
  notice: Notice | null;
}

/** A live session in one notebook; `onChange` is called whenever what to show changed. */
export class LiveNotebook {
  private ws: WebSocket | null = null;
  private session = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  private known: string[] | null = null;
  private cells: CellView[] = [];
  private confirmed = new Map<string, string>();
  private inflight: Map<string, Splice[]> | null = null;
  private buffer = new Map<string, Splice[]>();
  private local = new Map<string, string>();
  private presence: Presence[] = [];
  private state: LiveState = 'connecting';
  private notice: Notice | null = null;
  private retry = 500;
  private timer: number | undefined;
  private stopped = false;
  private myCell: string | null = null;
  /** The user's caret (code points in the text shown), sent at most every CARET_MS. */
  private myCaret: number | null = null;
  private caretTimer: number | undefined;
  /** Whether the caret last sent was worked out through edits the node had not yet made. */
  private caretRough = false;

  constructor(
    private project: string,
    private notebook: string,
    private onChange: (v: LiveView) => void,
  ) {
    this.connect();
  }

  /** Stops the session (the page is left). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.caretTimer);
    this.ws?.close();
    this.state = 'stopped';
  }

  /**
   * The user changed a cell's text from `before` (what the text area showed) to `after`. Others'
   * edits may have arrived since the text area last showed the cell: the user's change is then
   * rebased onto them, never undoing them.
   */
  type(cell: string, before: string, after: string) {
    const current = this.local.get(cell);
    if (current === undefined) return;
    const s = spliceOf(before, after);
    if (!s) return;
    let mine: Splice[] = [s];
    if (current !== before) {
      const theirs = spliceOf(before, current);
      if (theirs) mine = rebase(before, mine, [theirs]);
    }
    const list = this.buffer.get(cell) ?? [];
    list.push(...mine);
    this.buffer.set(cell, list);
    this.local.set(cell, apply(current, mine));
    this.flush();
    this.emit();
  }

  /** The user's caret is at `pos` (code points) in `cell`'s text as shown. */
  caret(cell: string, pos: number) {
    const moved = cell !== this.myCell;
    this.myCell = cell;
    this.myCaret = pos;
    if (moved) this.sendCaret();
    else this.scheduleCaret();
  }

  private scheduleCaret() {
    if (this.caretTimer !== undefined) return;
    this.caretTimer = window.setTimeout(() => {
      this.caretTimer = undefined;
      this.sendCaret();
    }, CARET_MS);
  }

  /** Says where the caret is, as a position in the text of the version this page holds. */
  private sendCaret() {
    const cell = this.myCell;
    if (!cell || !this.known) return;
    let caret = null;
    if (this.myCaret !== null && this.confirmed.has(cell)) {
      const typed = this.buffer.get(cell) ?? [];
      const sent = this.inflight?.get(cell) ?? [];
      caret = { pos: backward(backward(this.myCaret, typed), sent), base: this.known };
      this.caretRough = typed.length + sent.length > 0;
    }
    this.send({ type: 'presence', cell, caret });
  }

  private connect() {
    clearTimeout(this.timer);
    this.state = this.known ? 'offline' : 'connecting';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = new URLSearchParams({ session: this.session });
    if (this.known) q.set('since', this.known.join(','));
    const url = `${scheme}://${location.host}/api/v1/projects/${encodeURIComponent(this.project)}/notebooks/${encodeURIComponent(this.notebook)}/live?${q}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => this.receive(JSON.parse(String(e.data)) as FromNode);
    ws.onclose = () => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.state = 'offline';
      this.emit();
      this.timer = window.setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 8000);
    };
  }

  private send(m: unknown): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'live') return false;
    this.ws.send(JSON.stringify(m));
    return true;
  }

  /** Sends what was typed, if nothing is in flight. */
  private flush() {
    if (this.inflight || this.buffer.size === 0 || !this.known) return;
    const edits: CellSplices[] = [...this.buffer].map(([cell, splices]) => ({ cell, splices }));
    if (this.send({ type: 'edit', base: this.known, edits })) {
      this.inflight = this.buffer;
      this.buffer = new Map();
    }
  }

  private receive(m: FromNode) {
    switch (m.type) {
      case 'hello':
        this.retry = 500;
        this.state = 'live';
        if (m.delta && this.known) {
          // Back after a lost connection: the edit in flight was made, or goes out again.
          if (m.landed) this.acked(m.delta);
          else {
            this.requeue();
            this.updated(m.delta);
          }
        } else {
          this.start(m.notebook, m.heads);
        }
        this.sendCaret();
        this.flush();
        break;
      case 'ack':
        this.acked(m);
        this.flush();
        // The caret said while the edit was in flight is now known exactly.
        if (this.caretRough) this.scheduleCaret();
        break;
      case 'update':
        if (!this.inflight) this.updated(m);
        else if (m.presence) {
          // Its carets are in a version this page does not hold yet: keep the ones shown
          // until the answer to the edit says them again.
          const old = new Map(this.presence.map((p) => [p.author, p]));
          this.presence = m.presence.map((p) => {
            const before = old.get(p.author);
            return { ...p, caret: before && before.cell === p.cell ? before.caret : null };
          });
        }
        this.flush();
        break;
      case 'refused':
        this.notice = { message: m.message };
        if (m.resync) {
          // The node cannot take what this page holds: start again from its version, and
          // give the user what they typed that is not in it.
          const lost = this.pendingText();
          this.known = null;
          this.inflight = null;
          this.buffer = new Map();
          this.notice = { message: `${m.message}. The notebook was loaded again.`, lost: lost || undefined };
          this.ws?.close();
        }
        break;
    }
    this.emit();
  }

  private start(nb: NotebookView, heads: string[]) {
    this.cells = nb.cells;
    this.confirmed = new Map(nb.cells.map((c) => [c.id, c.source]));
    this.local = new Map(this.confirmed);
    this.known = heads;
  }

  /** Puts the edit in flight back in front of what was typed since. */
  private requeue() {
    if (!this.inflight) return;
    for (const [cell, splices] of this.inflight) {
      this.buffer.set(cell, [...splices, ...(this.buffer.get(cell) ?? [])]);
    }
    this.inflight = null;
  }

  private acked(d: Delta) {
    // The version of the edit: confirmed + inflight.
    for (const [cell, splices] of this.inflight ?? []) {
      const text = this.confirmed.get(cell);
      if (text !== undefined) this.confirmed.set(cell, apply(text, splices));
    }
    this.inflight = null;
    this.updated(d);
  }

  /** Applies what changed on the node to the confirmed texts, and rebases what was typed. */
  private updated(d: Delta) {
    if (d.presence) this.presence = d.presence;
    for (const t of d.texts) {
      const base = this.confirmed.get(t.cell);
      if (base === undefined) continue;
      const mine = this.buffer.get(t.cell);
      if (mine) this.buffer.set(t.cell, rebase(base, mine, t.splices));
      this.confirmed.set(t.cell, apply(base, t.splices));
    }
    for (const c of d.cells) {
      // A cell comes whole when it is new, or something besides its text changed; its source
      // is then the same as the spliced text, unless the text was replaced whole. Then what
      // was typed here is rebased onto the replacement.
      const base = this.confirmed.get(c.id);
      if (base !== undefined && base !== c.source) {
        const mine = this.buffer.get(c.id);
        const theirs = spliceOf(base, c.source);
        if (mine && theirs) this.buffer.set(c.id, rebase(base, mine, [theirs]));
      }
      this.confirmed.set(c.id, c.source);
      const i = this.cells.findIndex((x) => x.id === c.id);
      if (i >= 0) this.cells[i] = { ...c, source: this.cells[i].source };
      else this.cells.push(c);
    }
    for (const id of d.removed) {
      const mine = this.buffer.get(id);
      if (mine) {
        this.notice = {
          message: 'Someone deleted a cell you were typing in; what you typed there is below to copy.',
          lost: this.local.get(id),
        };
      }
      this.buffer.delete(id);
      this.confirmed.delete(id);
      this.local.delete(id);
    }
    if (d.order) {
      const at = new Map(d.order.map((id, i) => [id, i]));
      this.cells = this.cells.filter((c) => at.has(c.id)).sort((a, b) => (at.get(a.id) ?? 0) - (at.get(b.id) ?? 0));
    } else if (d.removed.length) {
      this.cells = this.cells.filter((c) => this.confirmed.has(c.id));
    }
    for (const [cell, text] of this.confirmed) {
      this.local.set(cell, apply(apply(text, this.inflight?.get(cell) ?? []), this.buffer.get(cell) ?? []));
    }
    this.known = d.heads;
  }

  private pendingText(): string {
    const cells = new Set([...(this.inflight?.keys() ?? []), ...this.buffer.keys()]);
    return [...cells].map((c) => this.local.get(c) ?? '').join('\n\n');
  }

  private emit() {
    const pending = [...(this.inflight?.values() ?? []), ...this.buffer.values()].reduce((n, s) => n + s.length, 0);
    this.onChange({
      state: this.state,
      cells: this.cells,
      text: (cell) => this.local.get(cell) ?? '',
      presence: this.presence,
      carets: (cell) =>
        this.presence
          .filter((p) => p.cell === cell && p.caret !== null)
          .map((p) => ({
            author: p.author,
            name: p.name,
            pos: forward(forward(p.caret as number, this.inflight?.get(cell) ?? []), this.buffer.get(cell) ?? []),
          })),
      pending,
      notice: this.notice,
    });
  }
}

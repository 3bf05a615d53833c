import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { addCell, deleteCell, moveCell } from './api';
import { CellEditor, type RemoteCaret } from './cell_editor';
import { LiveNotebook, type LiveView, type Presence } from './live';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A cell's source, editable, with others' carets in it. */
function CellText({ id, kind, text, label, carets, live }: { id: string; kind: string; text: string; label: string; carets: RemoteCaret[]; live: LiveNotebook }) {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<CellEditor | null>(null);
  useLayoutEffect(() => {
    if (!host.current) return;
    const e = new CellEditor(host.current, {
      id,
      text,
      kind,
      label,
      onType: (before, after) => live.type(id, before, after),
      onCaret: (pos) => live.caret(id, pos),
    });
    editor.current = e;
    return () => {
      e.destroy();
      editor.current = null;
    };
    // One editor per cell, for the life of the component; what changes is pushed below.
  }, [id, live]);
  useLayoutEffect(() => editor.current?.setText(text), [text]);
  useLayoutEffect(() => editor.current?.setKind(kind), [kind]);
  useLayoutEffect(() => editor.current?.setLabel(id, label), [id, label]);
  const key = carets.map((c) => `${c.author}:${c.pos}:${c.colour}`).join(',');
  useLayoutEffect(() => editor.current?.setCarets(carets), [key, text]);
  return <div ref={host} class="source-edit" />;
}

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  offline: 'Offline: keep typing, your edits are kept and sent when the connection returns',
  stopped: 'Stopped',
};

/// A notebook open for live co-editing: typing shows at once, others' edits merge in, and
/// every change is signed with the signed-in user's key by this node.
export function LiveEditor({ project, notebook, title }: { project: string; notebook: string; title: string }) {
  const [view, setView] = useState<LiveView | null>(null);
  const [live, setLive] = useState<LiveNotebook | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const l = new LiveNotebook(project, notebook, setView);
    setLive(l);
    return () => l.stop();
  }, [project, notebook]);
  if (!live || !view) return <p class="status">Opening the notebook for editing…</p>;
  const here = (cell: string): Presence[] => view.presence.filter((p) => p.cell === cell);
  // Each person keeps one colour in this notebook (the credit view's palette).
  const colour = (author: string) => view.presence.findIndex((p) => p.author === author) % 8;
  const caretsIn = (cell: string): RemoteCaret[] => view.carets(cell).map((c) => ({ ...c, colour: colour(c.author) }));
  const act = (f: Promise<unknown>) => f.catch((e) => setError(message(e)));
  return (
    <article class="notebook editing" aria-labelledby={`nb-edit-${notebook}`}>
      <header class="nb-head">
        <h2 id={`nb-edit-${notebook}`}>{title}</h2>
        <span class={`live-state ${view.state}`} role="status" data-state={view.state} data-pending={view.pending}>
          {STATE_TEXT[view.state]}
          {view.state === 'live' && (view.pending ? ` · saving ${view.pending} edit${view.pending === 1 ? '' : 's'}…` : ' · all saved')}
        </span>
      </header>
      {view.presence.length > 0 && (
        <p class="presence" aria-label="Also here">
          Also here: {view.presence.map((p) => p.name).join(', ')}
        </p>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {view.notice && (
        <div class="notice" role="alert">
          <p>{view.notice.message}</p>
          {view.notice.lost && (
            <details open>
              <summary>What you typed</summary>
              <pre>{view.notice.lost}</pre>
            </details>
          )}
        </div>
      )}
      {view.cells.map((c, i) => (
        <div key={c.id} class={`cell ${c.kind}`} data-cell={c.id}>
          <div class="prompt" aria-hidden="true">
            {c.kind === 'code' ? `[${c.execution_count ?? ' '}]` : c.kind === 'markdown' ? 'md' : 'raw'}
          </div>
          <div class="body">
            {here(c.id).length > 0 && (
              <p class="in-cell">
                {here(c.id).map((p) => (
                  <span key={p.author} class={`who by-${colour(p.author)}`}>
                    {p.name}
                  </span>
                ))}
              </p>
            )}
            <CellText id={c.id} kind={c.kind} text={view.text(c.id)} label={`Cell ${i + 1} (${c.kind})`} carets={caretsIn(c.id)} live={live} />
            <div class="cell-tools">
              <button type="button" onClick={() => act(addCell(project, notebook, 'code', i + 1))}>
                Add code cell below
              </button>
              <button type="button" onClick={() => act(addCell(project, notebook, 'markdown', i + 1))}>
                Add Markdown cell below
              </button>
              {i > 0 && (
                <button type="button" onClick={() => act(moveCell(project, notebook, c.id, i - 1))}>
                  Move cell {i + 1} up
                </button>
              )}
              {i < view.cells.length - 1 && (
                <button type="button" onClick={() => act(moveCell(project, notebook, c.id, i + 1))}>
                  Move cell {i + 1} down
                </button>
              )}
              <button type="button" onClick={() => act(deleteCell(project, notebook, c.id))}>
                Delete cell {i + 1}
              </button>
            </div>
          </div>
        </div>
      ))}
      {view.cells.length === 0 && (
        <button type="button" onClick={() => act(addCell(project, notebook, 'code'))}>
          Add a cell
        </button>
      )}
    </article>
  );
}

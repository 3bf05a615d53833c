// One cell's source in CodeMirror 6, for live co-editing: the user's typing is reported as the
// text before and after, others' edits are applied as changes (CodeMirror keeps the user's
// caret in place around them), and others' carets are drawn where they are, with their names.
//
// Positions outside this file count Unicode code points (as the node does); CodeMirror counts
// UTF-16 code units. The two helpers below convert.

import { Annotation, Compartment, EditorSelection, EditorState, type Extension, StateEffect, StateField } from '@codemirror/state';
import { EditorView, keymap, layer, RectangleMarker, type LayerMarker, type ViewUpdate } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { syntaxHighlighting, indentOnInput, bracketMatching } from '@codemirror/language';
import { python } from '@codemirror/lang-python';
import { classHighlighter } from '@lezer/highlight';

/** Code points of `text` before UTF-16 offset `at`. */
export function codePoints(text: string, at: number): number {
  let n = 0;
  for (let i = 0; i < at && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++;
    n++;
  }
  return n;
}

/** The UTF-16 offset of code point `cp` in `text` (its length if past the end). */
export function utf16(text: string, cp: number): number {
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
  }
  return i;
}

/** Someone else's caret: a code point position in the text this editor shows. */
export interface RemoteCaret {
  author: string;
  name: string;
  pos: number;
  /** Which of the author colours (0–7). */
  colour: number;
}

/** Marks changes that came from others, so they are not reported as typing. */
const fromOthers = Annotation.define<boolean>();

interface Placed {
  name: string;
  colour: number;
  /** UTF-16 offset. */
  at: number;
}

const setCarets = StateEffect.define<Placed[]>();

/** Others' carets, kept beside their text as it changes until the node tells them again. */
const carets = StateField.define<Placed[]>({
  create: () => [],
  update(value, tr) {
    for (const e of tr.effects) if (e.is(setCarets)) return e.value;
    if (!tr.docChanged) return value;
    return value.map((c) => ({ ...c, at: tr.changes.mapPos(c.at, -1) }));
  },
});

/** A caret with its author's name above it. */
class NamedCaret extends RectangleMarker {
  constructor(
    readonly name: string,
    colour: number,
    left: number,
    top: number,
    height: number,
  ) {
    super(`cm-remote-caret by-${colour}`, left, top, null, height);
  }

  draw(): HTMLDivElement {
    const el = super.draw();
    el.setAttribute('aria-hidden', 'true');
    const tag = document.createElement('span');
    tag.className = 'cm-remote-name';
    tag.textContent = this.name;
    el.appendChild(tag);
    return el;
  }

  eq(other: LayerMarker): boolean {
    return other instanceof NamedCaret && other.name === this.name && super.eq(other);
  }

  update(elt: HTMLElement, prev: RectangleMarker): boolean {
    return prev instanceof NamedCaret && prev.name === this.name && super.update(elt, prev);
  }
}

const caretLayer = layer({
  above: true,
  class: 'cm-remote-carets',
  update: (u: ViewUpdate) =>
    u.docChanged || u.geometryChanged || u.viewportChanged || u.startState.field(carets) !== u.state.field(carets),
  markers(view) {
    const out: LayerMarker[] = [];
    for (const c of view.state.field(carets)) {
      const at = Math.min(c.at, view.state.doc.length);
      const [box] = RectangleMarker.forRange(view, 'cm-remote-caret', EditorSelection.cursor(at));
      if (box) out.push(new NamedCaret(c.name, c.colour, box.left, box.top, box.height));
    }
    return out;
  },
});

export interface CellEditorOptions {
  id: string;
  text: string;
  kind: string;
  label: string;
  /** The user changed the text from `before` to `after`. */
  onType: (before: string, after: string) => void;
  /** The user's caret is at `pos` (code points) in the text shown. */
  onCaret: (pos: number) => void;
}

/** Markdown's language (with HTML, CSS and JavaScript inside it), loaded at its first use. */
let markdownLanguage: Promise<Extension> | null = null;

function language(kind: string): Extension | Promise<Extension> {
  if (kind === 'code') return python();
  if (kind === 'markdown') {
    markdownLanguage ??= import('@codemirror/lang-markdown').then((m) => m.markdown());
    return markdownLanguage;
  }
  return [];
}

function attributes(id: string, label: string) {
  return EditorView.contentAttributes.of({ 'aria-label': label, 'data-cell': id, spellcheck: 'false' });
}

/** The nonce the node gave this page for its editor's style element (its content security
 * policy allows no other inline style). */
const styleNonce = document.querySelector('meta[name="style-nonce"]')?.getAttribute('content') ?? null;

/** A CodeMirror editor for one cell, in `parent`. */
export class CellEditor {
  readonly view: EditorView;
  private lang = new Compartment();
  private attrs = new Compartment();
  private kind: string;
  private destroyed = false;

  constructor(parent: HTMLElement, o: CellEditorOptions) {
    this.kind = o.kind;
    const report = EditorView.updateListener.of((u) => {
      const typed = u.docChanged && !u.transactions.some((t) => t.annotation(fromOthers));
      if (typed) o.onType(u.startState.doc.toString(), u.state.doc.toString());
      if ((typed || u.selectionSet) && u.view.hasFocus) {
        const head = u.state.selection.main.head;
        o.onCaret(codePoints(u.state.doc.sliceString(0, head), head));
      }
      if (u.focusChanged && u.view.hasFocus) {
        const head = u.state.selection.main.head;
        o.onCaret(codePoints(u.state.doc.sliceString(0, head), head));
      }
    });
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: o.text,
        extensions: [
          history(),
          indentOnInput(),
          bracketMatching(),
          // Tab is left to move focus, so that the page stays usable by keyboard.
          keymap.of([...defaultKeymap, ...historyKeymap]),
          syntaxHighlighting(classHighlighter),
          this.lang.of([]),
          EditorView.lineWrapping,
          this.attrs.of(attributes(o.id, o.label)),
          carets,
          caretLayer,
          report,
          styleNonce ? EditorView.cspNonce.of(styleNonce) : [],
        ],
      }),
    });
    this.speak(o.kind);
  }

  /** Highlights the text as `kind` (once its language is loaded). */
  private speak(kind: string) {
    const lang = language(kind);
    if (!(lang instanceof Promise)) {
      this.view.dispatch({ effects: this.lang.reconfigure(lang) });
      return;
    }
    lang
      .then((l) => {
        if (this.kind === kind && !this.destroyed) this.view.dispatch({ effects: this.lang.reconfigure(l) });
      })
      // Without its language the text is still edited, only not highlighted.
      .catch(() => {
        markdownLanguage = null;
      });
  }

  /** Shows `text` (the user's typing with others' edits merged in), keeping the caret in place. */
  setText(text: string) {
    const now = this.view.state.doc.toString();
    if (now === text) return;
    let start = 0;
    while (start < now.length && start < text.length && now[start] === text[start]) start++;
    let end = 0;
    while (end < now.length - start && end < text.length - start && now[now.length - 1 - end] === text[text.length - 1 - end]) end++;
    this.view.dispatch({
      changes: { from: start, to: now.length - end, insert: text.slice(start, text.length - end) },
      annotations: [fromOthers.of(true)],
    });
  }

  /** Draws others' carets (positions in code points of the text shown). */
  setCarets(list: RemoteCaret[]) {
    const text = this.view.state.doc.toString();
    const placed = list.map((c) => ({ name: c.name, colour: c.colour, at: utf16(text, c.pos) }));
    this.view.dispatch({ effects: setCarets.of(placed) });
  }

  setKind(kind: string) {
    if (kind === this.kind) return;
    this.kind = kind;
    this.speak(kind);
  }

  setLabel(id: string, label: string) {
    this.view.dispatch({ effects: this.attrs.reconfigure(attributes(id, label)) });
  }

  destroy() {
    this.destroyed = true;
    this.view.destroy();
  }
}

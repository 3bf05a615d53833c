import { useEffect, useState } from 'preact/hooks';
import { type Federation, type Member, type Reach, federation } from './api';

// Colour-blind-safe palette (Okabe–Ito), one colour per member.
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

function reachText(r: Reach): string {
  switch (r.state) {
    case 'this_node':
      return 'this node';
    case 'connected':
      return 'connected';
    case 'last_seen':
      return `last seen ${new Date(r.at * 1000).toLocaleString()}`;
    default:
      return 'never seen';
  }
}

function hasCell(sky: number[], index: number): boolean {
  const byte = sky[index >> 3];
  return byte !== undefined && (byte & (1 << (index & 7))) !== 0;
}

/// The sky in 10° cells (RA increasing to the left, as on the sky), each member's coverage in
/// its colour.
function SkyMap({ members }: { members: Member[] }) {
  const cells: { x: number; y: number; colour: string; who: string }[] = [];
  members.forEach((m, i) => {
    const colour = COLOURS[i % COLOURS.length];
    for (const c of m.collections) {
      for (let row = 0; row < 18; row++) {
        for (let col = 0; col < 36; col++) {
          if (hasCell(c.sky, row * 36 + col)) cells.push({ x: 35 - col, y: 17 - row, colour, who: m.name });
        }
      }
    }
  });
  const label = `All-sky coverage of ${members.length} members: ${cells.length} cells of 10 degrees hold data.`;
  return (
    <figure class="sky">
      <svg viewBox="0 0 360 180" role="img" aria-label={label}>
        <rect x="0" y="0" width="360" height="180" class="sky-bg" />
        {[60, 120, 180, 240, 300].map((x) => (
          <line key={x} x1={x} y1="0" x2={x} y2="180" class="grid" />
        ))}
        {[30, 60, 90, 120, 150].map((y) => (
          <line key={y} x1="0" y1={y} x2="360" y2={y} class="grid" />
        ))}
        {cells.map((c, i) => (
          <rect key={i} x={c.x * 10} y={c.y * 10} width="10" height="10" fill={c.colour} fill-opacity="0.6" class="cell">
            <title>{c.who}</title>
          </rect>
        ))}
      </svg>
      <figcaption>
        Sky coverage, RA 360° → 0° left to right, Dec +90° at the top.{' '}
        {members.map((m, i) => (
          <span key={m.node} class="legend">
            <span class="swatch" style={{ background: COLOURS[i % COLOURS.length] }} aria-hidden="true" />
            {m.name}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function FederationPage() {
  const [view, setView] = useState<Federation | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    federation(controller.signal)
      .then(setView)
      .catch((e) => {
        if (!controller.signal.aborted) setError(e instanceof Error ? e.message : 'The node did not answer.');
      });
    return () => controller.abort();
  }, []);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!view) return <p class="status" role="status">Loading the federation…</p>;
  return (
    <section aria-labelledby="fed-title">
      <h1 id="fed-title">Federation {view.name}</h1>
      <p class="note">{view.members.length} member nodes. What each publishes comes from its signed advert.</p>
      <SkyMap members={view.members} />
      <ul class="members">
        {view.members.map((m) => (
          <li key={m.node} class="member">
            <h2>
              {m.name} <span class="sub">{m.short}</span>
            </h2>
            <p>
              {m.institution || 'institution unknown'} · <span class={`reach reach-${m.reach.state}`}>{reachText(m.reach)}</span>
            </p>
            {m.compute.length > 0 && (
              <p>
                Labs:{' '}
                {m.compute
                  .map((c) => `${c.environment} (${c.cores} cores, ${Math.round(c.memory_mib / 1024)} GiB${c.gpus ? `, ${c.gpus} GPU` : ''}; ${c.free_slots} free)`)
                  .join('; ')}
              </p>
            )}
            {m.collections.length === 0 ? (
              <p class="note">No collections published.</p>
            ) : (
              <table>
                <caption class="sr-only">Collections of {m.name}</caption>
                <thead>
                  <tr>
                    <th scope="col">Collection</th>
                    <th scope="col">Missions</th>
                    <th scope="col">Products</th>
                  </tr>
                </thead>
                <tbody>
                  {m.collections.map((c) => (
                    <tr key={c.id}>
                      <td>
                        {c.title || c.id}
                        {!c.complete && <span class="sub"> (scan incomplete)</span>}
                      </td>
                      <td>{c.missions ? c.missions.join(', ') : 'many'}</td>
                      <td class="num">{c.products}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

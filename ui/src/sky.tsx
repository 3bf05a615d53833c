import type { Cone, Hit } from './api';

// Colour-blind-safe palette (Okabe–Ito), one colour per node.
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#000000'];

/// Plate carrée, RA increasing to the left as on the sky: x = 360 − RA, y = 90 − Dec.
const toXY = (ra: number, dec: number) => ({ x: 360 - ra, y: 90 - dec });

/// This page's hits on the sky, coloured by node, with the cone asked for; a click on the map
/// picks a cone's centre there.
export function ResultsSky({
  hits,
  cone,
  onPick,
}: {
  hits: Hit[];
  cone: Cone | null;
  onPick: (ra: number, dec: number) => void;
}) {
  const nodes = [...new Set(hits.map((h) => h.node_name ?? h.node ?? ''))];
  const placed = hits.filter((h) => h.ra !== null && h.dec !== null);
  const pick = (e: MouseEvent) => {
    const svg = e.currentTarget as SVGSVGElement;
    const box = svg.getBoundingClientRect();
    const x = ((e.clientX - box.left) / box.width) * 360;
    const y = ((e.clientY - box.top) / box.height) * 180;
    const round = (v: number) => Math.round(v * 100) / 100;
    onPick(round(Math.min(360, Math.max(0, 360 - x)) % 360), round(Math.min(90, Math.max(-90, 90 - y))));
  };
  const centre = cone ? toXY(cone.ra, cone.dec) : null;
  return (
    <figure class="sky results-sky">
      <svg
        viewBox="0 0 360 180"
        role="img"
        aria-label={`${placed.length} of the ${hits.length} products shown, on the sky. Click to centre a cone there.`}
        onClick={pick}
      >
        <rect x="0" y="0" width="360" height="180" class="sky-bg" />
        {[60, 120, 180, 240, 300].map((x) => (
          <line key={x} x1={x} y1="0" x2={x} y2="180" class="grid" />
        ))}
        {[30, 60, 90, 120, 150].map((y) => (
          <line key={y} x1="0" y1={y} x2="360" y2={y} class="grid" />
        ))}
        {centre && cone && (
          <circle cx={centre.x} cy={centre.y} r={Math.max(cone.radius, 1)} class="cone" fill="none" stroke-width="1" />
        )}
        {placed.map((h) => {
          const { x, y } = toXY(h.ra as number, h.dec as number);
          const colour = COLOURS[nodes.indexOf(h.node_name ?? h.node ?? '') % COLOURS.length];
          return (
            <circle key={`${h.node}/${h.id}`} cx={x} cy={y} r="2" fill={colour} class="hit">
              <title>{`${h.title} (${h.node_name ?? h.node})`}</title>
            </circle>
          );
        })}
      </svg>
      <figcaption>
        The products shown, RA 360° → 0° left to right, Dec +90° at the top; click the map to pick a cone's centre.{' '}
        {nodes.map((n, i) => (
          <span key={n} class="legend">
            <svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">
              <rect width="10" height="10" fill={COLOURS[i % COLOURS.length]} />
            </svg>
            {n}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

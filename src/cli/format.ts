/** Plain-text tables and number formatting for the terminal. */

/** Right-align numbers, left-align text, columns padded to the widest cell. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = header.map((_, j) => Math.max(...cells.map((r) => [...(r[j] ?? '')].length)));
  const numeric = header.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === 'number'));
  const line = (r: string[]) => r.map((c, j) => (numeric[j] ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** A number with 4 significant decimals (integers as they are, with thousands separators). */
export function fmt(x: number): string {
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  if (!Number.isFinite(x)) return String(x);
  return x.toFixed(4);
}

/** Show a token so whitespace and control characters are visible. */
export function showToken(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

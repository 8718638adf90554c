/**
 * The loss-curve SVG: one well-formed root element, one polyline per series holding every recorded point
 * (in step order, inside the plot area, mapped linearly), nice ticks, a legend, escaped text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetricsRecord } from './metrics.js';
import { lossCurveSvg, lossSeries, niceTicks } from './plot.js';

const records: MetricsRecord[] = [
  ...Array.from({ length: 30 }, (_, i) => ({ loss: 3 / (1 + i / 5), grad_norm: 1, learning_rate: 1e-3, epoch: i / 30, step: i + 1 })),
  { eval_loss: 2.5, eval_accuracy: 0.5, epoch: 0.33, step: 10 },
  { eval_loss: 1.9, epoch: 0.66, step: 20 },
  { eval_loss: 1.7, epoch: 1, step: 30 },
  { loss: NaN, step: 31 },
  { train_runtime: 3.2, train_loss: 1.2, epoch: 1, step: 30 },
];

function polyline(svg: string, series: string): [number, number][] {
  const m = new RegExp(`<polyline data-series="${series}"[^>]*points="([^"]*)"`).exec(svg);
  assert.ok(m, `polyline ${series}`);
  return m[1].trim().split(/\s+/).map((p) => p.split(',').map(Number) as [number, number]);
}

test('the SVG has one root, a polyline per series with every point, x increasing, inside the plot', () => {
  const svg = lossCurveSvg(records, { title: 'run <1> & "two"' });
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" [^>]*viewBox="0 0 720 420"[^>]*>[\s\S]*<\/svg>\n$/);
  assert.equal(svg.match(/<svg\b/g)!.length, 1);
  assert.match(svg, /run &lt;1&gt; &amp; &quot;two&quot;/);
  const train = polyline(svg, 'train loss');
  const evals = polyline(svg, 'eval loss');
  assert.equal(train.length, 30, 'every finite train loss (the NaN and train_loss summary are not points)');
  assert.equal(evals.length, 3);
  for (const pts of [train, evals]) {
    for (let i = 1; i < pts.length; i++) assert.ok(pts[i][0] > pts[i - 1][0]);
    assert.ok(pts.every(([x, y]) => x >= 70 && x <= 700 && y >= 40 && y <= 370));
  }
  // Linear mapping: x of step s is 70 + (s − 1)/29 · 630; the largest loss (3, step 1) is at the top.
  train.forEach(([x], i) => assert.ok(Math.abs(x - (70 + (i / 29) * 630)) < 0.01));
  assert.equal(train[0][1], 40);
  assert.equal(Math.max(...train.map((p) => p[1]), ...evals.map((p) => p[1])), 370, 'the smallest loss sits on the x axis');
  assert.match(svg, />train loss<\/text>/);
  assert.match(svg, />eval loss<\/text>/);
  assert.match(svg, />step<\/text>/);
  // Every element is closed: tags balance.
  const opens = (svg.match(/<(g|text|svg)\b[^>]*[^/]>/g) ?? []).length;
  const closes = (svg.match(/<\/(g|text|svg)>/g) ?? []).length;
  assert.equal(opens, closes);
});

test('lossSeries reads loss and eval_loss by step; no records gives a valid empty plot', () => {
  const [train, evals] = lossSeries(records);
  assert.deepEqual(evals.points, [[10, 2.5], [20, 1.9], [30, 1.7]]);
  assert.equal(train.points.length, 30);
  const empty = lossCurveSvg([]);
  assert.match(empty, /^<svg[^>]*>[\s\S]*no loss values recorded[\s\S]*<\/svg>\n$/);
  const one = lossCurveSvg([{ loss: 2, step: 1 }]);
  assert.equal(polyline(one, 'train loss').length, 1);
});

test('nice ticks step by 1, 2 or 5 × 10^k inside the range', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(1.3, 2.9), [1.5, 2, 2.5]);
  assert.deepEqual(niceTicks(0.12, 0.95), [0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(niceTicks(1, 1000), [200, 400, 600, 800, 1000]);
});

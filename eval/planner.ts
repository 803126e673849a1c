/**
 * `npm run eval:planner`: plans every prompt of both splits with the offline planner (or, with --llm, the
 * configured LLM planner), scores the layouts with LMD's stage-1 rules and prints the score per category.
 *
 *   npm run eval:planner                      both splits, offline
 *   npm run eval:planner -- --split dev       one split
 *   npm run eval:planner -- --failures        also list every failing prompt and why
 *   npm run eval:planner -- --cases file.jsonl  another set (one EvalCase JSON per line)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { planOffline } from '../src/planner/offline.ts';
import type { Scene } from '../src/scene/schema.ts';
import { captionCases } from './captions.ts';
import { evalCases, type Category, type EvalCase } from './cases.ts';
import { score } from './score.ts';

export interface CategoryScore {
  category: Category;
  passed: number;
  total: number;
}

export interface Report {
  split: string;
  scores: CategoryScore[];
  failures: { c: EvalCase; why: string[] }[];
}

export async function evaluate(
  split: string,
  cases: EvalCase[],
  plan: (text: string) => Promise<Scene>,
): Promise<Report> {
  const categories = [...new Set(cases.map((c) => c.category))];
  const scores = new Map<Category, CategoryScore>(categories.map((c) => [c, { category: c, passed: 0, total: 0 }]));
  const failures: Report['failures'] = [];
  for (const c of cases) {
    const s = scores.get(c.category)!;
    s.total++;
    let why: string[];
    try {
      why = score(c, await plan(c.prompt)).why;
    } catch (e) {
      why = [`the planner failed: ${(e as Error).message}`];
    }
    if (why.length) failures.push({ c, why });
    else s.passed++;
  }
  return { split, scores: [...scores.values()].filter((s) => s.total > 0), failures };
}

export function formatReport(r: Report): string {
  const pct = (s: CategoryScore) => `${((100 * s.passed) / s.total).toFixed(1)}%`;
  const all = r.scores.reduce((a, s) => ({ passed: a.passed + s.passed, total: a.total + s.total }), {
    passed: 0,
    total: 0,
  });
  const lines = [`${r.split}:`];
  for (const s of r.scores) lines.push(`  ${s.category.padEnd(16)} ${pct(s).padStart(6)}  (${s.passed}/${s.total})`);
  lines.push(
    `  ${'overall'.padEnd(16)} ${`${((100 * all.passed) / Math.max(1, all.total)).toFixed(1)}%`.padStart(6)}  (${all.passed}/${all.total})`,
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      split: { type: 'string' },
      failures: { type: 'boolean', default: false },
      cases: { type: 'string' },
      llm: { type: 'boolean', default: false },
    },
  });
  let plan = async (text: string) => planOffline(text).scene;
  if (values.llm) {
    const { loadConfig, readEnvironment } = await import('../src/config/config.ts');
    const { llmFromConfig } = await import('../src/planner/llm.ts');
    const { planScene } = await import('../src/planner/plan.ts');
    const llm = llmFromConfig(loadConfig(readEnvironment()).llm);
    if (!llm) throw new Error('--llm needs OPENAI_BASE_URL or OPENAI_API_KEY (see .env.example)');
    plan = async (text) => (await planScene(text, { llm, llmOnly: true })).scene;
  }
  const sets: [string, EvalCase[]][] = values.cases
    ? [
        [
          values.cases,
          readFileSync(values.cases, 'utf8')
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as EvalCase),
        ],
      ]
    : Object.entries({ ...evalCases(), ...captionCases() }).filter(([name]) => !values.split || name === values.split);
  for (const [name, cases] of sets) {
    const r = await evaluate(name, cases, plan);
    console.log(formatReport(r));
    if (values.failures)
      for (const f of r.failures) console.log(`    ✗ [${f.c.category}] ${f.c.prompt}\n        ${f.why.join('; ')}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}

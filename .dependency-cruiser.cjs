/**
 * The layer rule, checked by `npm run lint` (dependency-cruiser): imports point down the floors, never up or
 * sideways, and no file-level import circle.
 *
 *   cli                     the command line (and the entry of every process)
 *   bot                     discord.js: slash commands (root commands/), buttons, replies
 *   worker                  runs the engine on jobs
 *   queue                   the job queue (embedded SQLite or BullMQ on Redis)
 *   planner, store          scene text → Scene; SQLite generations
 *   paint                   Scene / parent + edit → the RAG passes to run (the paint request)
 *   engine                  a library over RAG parameters: checkpoints, graphs, ONNX Runtime, the pipeline
 *   rag, scene              RAG parameter vocabulary; the Scene domain object
 *   config                  settings and the error types everyone throws
 *   log                     the structured logger
 *
 * The root commands/ folder is above src/ (the bot loads it); nothing in src/ imports it.
 */
const floors = [
  ['log'],
  ['config'],
  ['rag', 'scene'],
  ['engine'],
  ['paint'],
  ['planner', 'store'],
  ['queue'],
  ['worker'],
  ['bot'],
  ['cli'],
];

const folder = (names) => `^src/(${names.join('|')})/`;

const floorRules = floors.flatMap((here, i) => {
  const above = floors.slice(i + 1).flat();
  const rules = [];
  if (above.length)
    rules.push({
      name: `${here.join('-')}-points-down`,
      comment: `${here.join(' and ')} may import only the floors below it (see .dependency-cruiser.cjs)`,
      severity: 'error',
      from: { path: folder(here) },
      to: { path: folder(above) },
    });
  for (const a of here)
    for (const b of here.filter((x) => x !== a))
      rules.push({
        name: `${a}-not-${b}`,
        comment: `${a} and ${b} share a floor: neither imports the other`,
        severity: 'error',
        from: { path: folder([a]) },
        to: { path: folder([b]) },
      });
  return rules;
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no file-level import circle',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-commands',
      comment: 'src/ does not import the root commands/ folder: the bot loads it at start',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^commands/' },
    },
    ...floorRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench|scripts|eval|\\.tmp)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};

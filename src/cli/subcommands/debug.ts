import { loadConfig, readEnvironment } from '../../config/config.ts';
import { DEBUG_FLAGS } from '../../engine/debug/component.ts';
import { DEBUG_COMPONENTS } from '../../engine/debug/registry.ts';
import { runDebug } from '../../engine/debug/run.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';
import { UserError } from '../../config/errors.ts';

const usage =
  'scenewright debug <component> --model <dir> --inputs <in.safetensors> --out <out.safetensors> [--prefix caseN_] [--intermediates]\n' +
  `       components: ${Object.keys(DEBUG_COMPONENTS).join(', ')}\n` +
  '       (EXECUTION_PROVIDER and ORT_THREADS from the environment / .env apply)';

export const command: CliCommand = {
  summary: 'run one engine component on tensors from a safetensors file (for checking against other implementations)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, DEBUG_FLAGS, usage);
    const [name, ...extra] = positionals;
    if (!name) throw new UserError(`which component?\n\nusage: ${usage}`, 2);
    if (extra.length > 0) throw new UserError(`unexpected arguments: ${extra.join(' ')}\n\nusage: ${usage}`, 2);
    const config = loadConfig(readEnvironment());
    const runtime = { executionProvider: config.model.executionProvider, threads: config.model.threads };
    const result = await runDebug(name, values, runtime, (m) => process.stderr.write(`${m}\n`));
    if ('json' in result) process.stdout.write(`${JSON.stringify(result.json)}\n`);
    else process.stderr.write(`wrote ${Object.keys(result.tensors).join(', ')} to ${String(values.out)}\n`);
    return 0;
  },
};

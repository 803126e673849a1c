import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import { intOption, parseCommandArgs, type CliCommand } from '../command.ts';

const usage =
  'scenewright make-tiny-model --out <dir> [--preset tiny|bench|wide] [--variant dev|schnell] [--seed N] [--tokenizers <dir>]\n' +
  '       [--weights bf16|int8|int4|fp8|gguf-q4_0|gguf-q8_0] [--force]\n' +
  '       tiny: the shapes of the test fixtures; bench: FLUX architecture sized for ~1 s per 512² step on 2 CPU cores;\n' +
  "       wide: FLUX.1's real width (3072 = 24 heads × 128, T5 4096, pooled 768) with 1 double + 2 single blocks\n" +
  '       (≈ 0.68 G transformer parameters, 1.3 GB on disk).\n' +
  '       --tokenizers: a FLUX.1 checkpoint folder (tokenizer/, tokenizer_2/) to copy the tokenizer files from\n' +
  '       (default: ../shared/fixtures/tokenizers next to the repository, when present).\n' +
  '       --weights: the form of the transformer and T5 weights (default bf16): fp8 = F8_E4M3 linear weights;\n' +
  '       gguf-q4_0 / gguf-q8_0 = transformer/flux1-<variant>-Q*.gguf (BFL names) and text_encoder_2/t5-*.gguf;\n' +
  '       int8 / int4 = the bf16 files plus their MatMulNBits weights in scenewright-prepared/ and a scenewright.json\n' +
  '       that makes the form the folder\'s default (README "Memory").';

export const command: CliCommand = {
  summary:
    'write a random FLUX.1 checkpoint in the diffusers layout (real key names and configs, bf16) for tests and benchmarks',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        out: { type: 'string' },
        preset: { type: 'string', default: 'tiny' },
        variant: { type: 'string', default: 'dev' },
        seed: { type: 'string' },
        tokenizers: { type: 'string' },
        force: { type: 'boolean', default: false },
        weights: { type: 'string', default: 'bf16' },
      },
      usage,
    );
    if (positionals.length > 0)
      throw new UserError(`unexpected arguments: ${positionals.join(' ')}\n\nusage: ${usage}`, 2);
    if (!values.out) throw new UserError(`--out <dir> is required\n\nusage: ${usage}`, 2);
    const { PRESETS } = await import('../../engine/tiny-model/presets.ts');
    const preset = PRESETS.find((p) => p === values.preset);
    if (!preset) throw new UserError(`--preset must be ${PRESETS.join(', ')} (got "${values.preset}")`, 2);
    if (values.variant !== 'dev' && values.variant !== 'schnell')
      throw new UserError(`--variant must be dev or schnell (got "${values.variant}")`, 2);
    const { TINY_FORMS, writeWeightsForm } = await import('../../engine/tiny-model/forms.ts');
    const form = TINY_FORMS.find((f) => f === values.weights);
    if (!form) throw new UserError(`--weights must be ${TINY_FORMS.join(', ')} (got "${values.weights}")`, 2);
    const { writeTinyModel } = await import('../../engine/tiny-model/make.ts');
    const t0 = Date.now();
    const result = await writeTinyModel({
      out: path.resolve(values.out),
      preset,
      variant: values.variant,
      seed: intOption(values.seed, 'seed', 0, 2 ** 48) ?? 0,
      tokenizers: values.tokenizers,
      force: values.force,
      progress: (m) => process.stderr.write(`${m}\n`),
    });
    writeWeightsForm(result.out, form, (m) => process.stderr.write(`${m}\n`));
    const params = result.components.reduce((a, c) => a + c.parameters, 0);
    process.stderr.write(
      `wrote FLUX.1-${values.variant} ${preset} checkpoint (${form}) to ${result.out}: ${(params / 1e6).toFixed(1)} M parameters in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
    return 0;
  },
};

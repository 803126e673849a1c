import { intOption } from '../../config/int-option.ts';
import { flowMatchSchedule, parseSchedulerConfig } from '../scheduler.ts';
import type { DebugComponent } from './component.ts';

/** debug scheduler: prints {"sigmas": [...], "timesteps": [...]} (and mu when the shift is dynamic). */
export const component: DebugComponent = {
  summary:
    'scheduler: --steps N --seq-len L (packed image tokens, (H/16)·(W/16)) → prints {"sigmas", "timesteps"} as JSON',
  required: ['steps', 'seq-len'],
  async run(ctx) {
    const steps = intOption(String(ctx.flags.steps), 'steps', 1, 10_000)!;
    const seqLen = intOption(String(ctx.flags['seq-len']), 'seq-len', 1, 1_000_000)!;
    const cfg = parseSchedulerConfig(ctx.checkpoint().schedulerConfig(), 'scheduler/scheduler_config.json');
    const s = flowMatchSchedule(cfg, steps, seqLen);
    return {
      json: {
        sigmas: Array.from(s.sigmas),
        timesteps: Array.from(s.timesteps),
        ...(s.mu === undefined ? {} : { mu: s.mu }),
      },
    };
  },
};

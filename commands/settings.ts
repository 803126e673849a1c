import { MessageFlags, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { Refusal } from '../src/bot/errors.ts';
import { ASPECTS } from '../src/bot/models.ts';
import { NO_MENTIONS } from '../src/bot/text.ts';
import type { UserSettings } from '../src/store/schema.ts';

function describe(s: UserSettings): string {
  const parts = [
    `steps: ${s.steps ?? 'model default'}`,
    `aspect: ${s.aspect ?? '1:1'}`,
    `model: ${s.model ?? 'server default'}`,
    `seed: ${s.seed ?? 'random'}`,
  ];
  return parts.join(' · ');
}

/** `/settings [steps] [aspect] [model] [seed] [reset]`: per-user defaults for /imagine and /layout. */
export const command: SlashCommand = {
  name: 'settings',
  definition(config, models) {
    return new SlashCommandBuilder()
      .setName('settings')
      .setDescription('Your defaults for new images (run without options to see them)')
      .addIntegerOption((o) =>
        o.setName('steps').setDescription('Default number of steps').setMinValue(1).setMaxValue(config.limits.maxSteps),
      )
      .addStringOption((o) =>
        o
          .setName('aspect')
          .setDescription('Default width:height')
          .addChoices(...ASPECTS.map((a) => ({ name: a, value: a }))),
      )
      .addStringOption((o) =>
        o
          .setName('model')
          .setDescription('Default model')
          .addChoices(...models.map((m) => ({ name: m.name, value: m.id }))),
      )
      .addIntegerOption((o) =>
        o
          .setName('seed')
          .setDescription('Always use this seed (use reset to go back to random)')
          .setMinValue(0)
          .setMaxValue(2 ** 32 - 1),
      )
      .addBooleanOption((o) => o.setName('reset').setDescription('Forget all your defaults'))
      .toJSON();
  },
  async execute(ix, ctx) {
    const userId = ix.user.id;
    const steps = ix.options.getInteger('steps');
    if (steps !== null && steps > ctx.config.limits.maxSteps)
      throw new Refusal(`At most ${ctx.config.limits.maxSteps} steps are allowed here.`);
    let settings: UserSettings;
    if (ix.options.getBoolean('reset')) {
      settings = ctx.store.setUserSettings(userId, { steps: null, aspect: null, model: null, seed: null });
    } else {
      settings = ctx.store.setUserSettings(userId, {
        steps: steps ?? undefined,
        aspect: ix.options.getString('aspect') ?? undefined,
        model: ix.options.getString('model') ?? undefined,
        seed: ix.options.getInteger('seed') ?? undefined,
      });
    }
    const usage = ctx.store.usage(userId);
    const used = usage.length ? `\n-# Used today: ${usage.map((u) => `${u.kind} ${u.today}`).join(', ')}` : '';
    await ix.reply({
      content: `⚙️ Your defaults: ${describe(settings)}${used}`,
      flags: MessageFlags.Ephemeral,
      allowedMentions: NO_MENTIONS,
    });
  },
};

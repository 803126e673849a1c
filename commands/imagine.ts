import { SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { ASPECTS } from '../src/bot/models.ts';
import { EMPTY_PROMPT } from '../src/bot/flows.ts';
import { Refusal } from '../src/bot/errors.ts';
import { visibleText } from '../src/bot/text.ts';
import { interactionTarget, requesterOf, respond, showPrepared } from '../src/bot/present.ts';

/** `/imagine prompt [seed] [aspect] [steps] [model]`: plan a layout from text, show it, paint it. */
export const command: SlashCommand = {
  name: 'imagine',
  definition(config, models) {
    return new SlashCommandBuilder()
      .setName('imagine')
      .setDescription('Describe a scene; I plan where everything goes and paint it')
      .addStringOption((o) =>
        o
          .setName('prompt')
          .setDescription('The scene, e.g. "a black cat on the left and a white dog on the right"')
          .setRequired(true)
          .setMaxLength(1000),
      )
      .addIntegerOption((o) =>
        o
          .setName('seed')
          .setDescription('Seed for a repeatable picture (random when left out)')
          .setMinValue(0)
          .setMaxValue(2 ** 32 - 1),
      )
      .addStringOption((o) =>
        o
          .setName('aspect')
          .setDescription('Width:height')
          .addChoices(...ASPECTS.map((a) => ({ name: a, value: a }))),
      )
      .addIntegerOption((o) =>
        o
          .setName('steps')
          .setDescription('Denoising steps (more is slower)')
          .setMinValue(1)
          .setMaxValue(config.limits.maxSteps),
      )
      .addStringOption((o) =>
        o
          .setName('model')
          .setDescription('Which model')
          .addChoices(...models.map((m) => ({ name: m.name, value: m.id }))),
      )
      .toJSON();
  },
  async execute(ix, ctx) {
    // Zero-width and other invisible characters are no prompt: refused privately, before any work.
    const prompt = visibleText(ix.options.getString('prompt', true)).trim();
    if (!prompt) throw new Refusal(EMPTY_PROMPT);
    const requester = requesterOf(ix);
    // Cheap checks first, so a refusal can be private; everything slower happens after the acknowledgement.
    const slot = await ctx.flows.precheck(requester, prompt, { paints: true });
    try {
      await ix.deferReply();
      const prepared = await ctx.flows.imagine({
        requester,
        guildId: ix.guildId,
        prompt,
        seed: ix.options.getInteger('seed') ?? undefined,
        aspect: ix.options.getString('aspect') ?? undefined,
        steps: ix.options.getInteger('steps') ?? undefined,
        model: ix.options.getString('model') ?? undefined,
        target: interactionTarget(ix),
      });
      await ctx.attach(prepared, await respond(ix, showPrepared(prepared, ctx.flows.noModelText())));
    } finally {
      slot.release();
    }
  },
};

import { SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { ASPECTS } from '../src/bot/models.ts';
import { EMPTY_PROMPT } from '../src/bot/flows.ts';
import { Refusal } from '../src/bot/errors.ts';
import { styleChoices } from '../src/bot/styles.ts';
import { visibleText } from '../src/bot/text.ts';
import { LORA_LIMITS } from '../src/rag/params.ts';
import { interactionTarget, requesterOf, respond, showPrepared } from '../src/bot/present.ts';

/** `/imagine prompt [seed] [aspect] [steps] [model] [style] [style_scale]`: plan a layout from text, show it, paint it. */
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
      .addStringOption((o) =>
        o.setName('style').setDescription('A style for the whole picture (see /styles)').setAutocomplete(true),
      )
      .addNumberOption((o) =>
        o
          .setName('style_scale')
          .setDescription('How strong the style is (default 1; negative pushes away from it)')
          .setMinValue(LORA_LIMITS.minScale)
          .setMaxValue(LORA_LIMITS.maxScale),
      )
      .toJSON();
  },
  async execute(ix, ctx) {
    // Zero-width and other invisible characters are no prompt: refused privately, before any work.
    const prompt = visibleText(ix.options.getString('prompt', true)).trim();
    if (!prompt) throw new Refusal(EMPTY_PROMPT);
    const style = visibleText(ix.options.getString('style') ?? '').trim();
    const scale = ix.options.getNumber('style_scale');
    if (scale !== null && !style) throw new Refusal('`style_scale` needs a `style` to scale: pick one (see /styles).');
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
        ...(style ? { styles: [{ name: style, scale: scale ?? 1 }] } : {}),
        target: interactionTarget(ix),
      });
      await ctx.attach(prepared, await respond(ix, showPrepared(prepared, ctx.flows.noModelText())));
    } finally {
      slot.release();
    }
  },
  async autocomplete(ix, ctx) {
    const focused = ix.options.getFocused(true);
    if (focused.name !== 'style') return ix.respond([]);
    await ix.respond(styleChoices(await ctx.flows.styles(), String(focused.value)));
  },
};

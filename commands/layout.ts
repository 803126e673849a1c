import { SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { Refusal } from '../src/bot/errors.ts';
import { LAYOUT_SYNTAX_HELP, parseLayoutText } from '../src/bot/layout-syntax.ts';
import { ASPECTS } from '../src/bot/models.ts';
import { visibleText } from '../src/bot/text.ts';
import { interactionTarget, requesterOf, respond, showPrepared } from '../src/bot/present.ts';
import { sizeForAspect } from '../src/scene/normalize.ts';
import { parseSceneJSON } from '../src/scene/json.ts';
import type { Scene } from '../src/scene/schema.ts';

const MAX_JSON_BYTES = 100_000;

/** `/layout`: regions given explicitly (short text syntax or a Scene JSON file) instead of planned. */
export const command: SlashCommand = {
  name: 'layout',
  definition(config) {
    return new SlashCommandBuilder()
      .setName('layout')
      .setDescription('Give the layout yourself: where each thing goes')
      .addStringOption((o) =>
        o
          .setName('regions')
          .setDescription('e.g. "a black cat @ left <watercolor:0.8>; a white dog @ 55 20 40 70" (x y w h in %)')
          .setMaxLength(2000),
      )
      .addAttachmentOption((o) =>
        o.setName('file').setDescription('A Scene JSON file (as `scenewright plan --json` prints)'),
      )
      .addStringOption((o) =>
        o
          .setName('prompt')
          .setDescription('One caption for the whole picture (default: the labels)')
          .setMaxLength(1000),
      )
      .addStringOption((o) =>
        o.setName('background').setDescription('What fills the space around the regions').setMaxLength(600),
      )
      .addStringOption((o) =>
        o
          .setName('aspect')
          .setDescription('Width:height (text syntax only)')
          .addChoices(...ASPECTS.map((a) => ({ name: a, value: a }))),
      )
      .addIntegerOption((o) =>
        o
          .setName('seed')
          .setDescription('Seed (random when left out)')
          .setMinValue(0)
          .setMaxValue(2 ** 32 - 1),
      )
      .addIntegerOption((o) =>
        o.setName('steps').setDescription('Denoising steps').setMinValue(1).setMaxValue(config.limits.maxSteps),
      )
      .toJSON();
  },
  async execute(ix, ctx) {
    const text = visibleText(ix.options.getString('regions') ?? '') || null;
    const file = ix.options.getAttachment('file');
    const prompt = ix.options.getString('prompt') ?? undefined;
    const background = ix.options.getString('background') ?? '';
    if (!text && !file)
      throw new Refusal(`Give the regions as text or attach a Scene JSON file. ${LAYOUT_SYNTAX_HELP}`);
    if (text && file) throw new Refusal('Give the regions either as text or as a file, not both.');
    const requester = requesterOf(ix);
    const { limits } = ctx.config;
    let scene: Scene | undefined;
    if (text) {
      // Parsed before acknowledging: a typo gets a private answer.
      const regions = parseLayoutText(text, limits.maxRegions);
      let size;
      try {
        size = sizeForAspect(
          ix.options.getString('aspect') ?? ctx.store.getUserSettings(ix.user.id).aspect ?? '1:1',
          limits.defaultSize,
          limits,
        );
      } catch (e) {
        throw new Refusal(`${(e as Error).message}.`);
      }
      scene = { ...size, prompt: prompt ?? regions.map((r) => r.label).join(', '), background, exclude: [], regions };
    }
    const slot = await ctx.flows.precheck(requester, [text ?? '', prompt ?? '', background].join('\n'), {
      paints: true,
    });
    try {
      await ix.deferReply();
      if (!scene && file) {
        if (file.size > MAX_JSON_BYTES)
          throw new Refusal(
            `That file is ${file.size} bytes; a Scene JSON file should be under ${MAX_JSON_BYTES / 1000} kB.`,
          );
        const res = await fetch(file.url, { signal: AbortSignal.timeout(15_000) });
        if (!res.ok) throw new Refusal(`I could not download ${file.name} (HTTP ${res.status}). Attach it again.`);
        try {
          scene = parseSceneJSON(await res.text(), limits);
        } catch (e) {
          throw new Refusal(`${file.name} is not a usable Scene: ${(e as Error).message}`);
        }
        const refusal = ctx.flows.checkText(
          [scene.prompt, scene.background, ...scene.regions.flatMap((r) => [r.label, r.prompt])].join('\n'),
          requester,
        );
        if (refusal) throw new Refusal(refusal);
        if (prompt) scene = { ...scene, prompt };
        if (background) scene = { ...scene, background };
      }
      const prepared = await ctx.flows.explicit({
        requester,
        guildId: ix.guildId,
        scene: scene!,
        requestText: scene!.prompt,
        seed: ix.options.getInteger('seed') ?? undefined,
        steps: ix.options.getInteger('steps') ?? undefined,
        target: interactionTarget(ix),
      });
      await ctx.attach(prepared, await respond(ix, showPrepared(prepared, ctx.flows.noModelText())));
    } finally {
      slot.release();
    }
  },
};

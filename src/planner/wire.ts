/**
 * What the LLM is asked to return, as zod schemas that OpenAI's strict structured outputs accept: objects
 * only (boxes are {x, y, w, h}, never tuples), every field required, "absent" spelled null. Ranges and
 * counts are checked after parsing, because strict mode and local servers handle such keywords unevenly.
 */
import { z } from 'zod';

export const ASPECTS = ['1:1', '4:3', '3:4', '3:2', '2:3', '16:9', '9:16'] as const;

export const WireBox = z.object({
  x: z.number().describe('left edge, fraction of the image width (0..1)'),
  y: z.number().describe('top edge, fraction of the image height (0..1)'),
  w: z.number().describe('width, fraction of the image width'),
  h: z.number().describe('height, fraction of the image height'),
});

export const WireRegion = z.object({
  label: z.string().describe('short name of ONE object with its attributes, e.g. "a red apple"'),
  prompt: z.string().describe('detailed description of this object only'),
  box: WireBox,
});

export const WirePlan = z.object({
  prompt: z.string().describe('global caption, one sentence, no excluded things'),
  background: z.string().describe('the setting without any boxed object'),
  exclude: z.array(z.string()).describe('things the user does not want in the picture'),
  aspect: z.enum(ASPECTS).nullable().describe('picture shape when the description asks for one, else null'),
  regions: z.array(WireRegion).describe('one box per object instance'),
});
export type WirePlan = z.infer<typeof WirePlan>;

export const WireEdit = z.object({
  kind: z.enum(['change', 'start_over', 'clarify']),
  references: z.array(
    z.object({
      text: z.string().describe('a phrase of the instruction that points at existing regions, as written'),
      ids: z.array(z.string()).describe('the region ids it means'),
    }),
  ),
  update: z.array(
    z.object({
      id: z.string(),
      label: z.string().nullable(),
      prompt: z.string().nullable(),
      box: WireBox.nullable(),
    }),
  ),
  add: z.array(WireRegion),
  remove: z.array(z.string()),
  prompt: z.string().nullable(),
  background: z.string().nullable(),
  exclude: z.array(z.string()).nullable(),
  description: z.string().nullable(),
  question: z.string().nullable(),
});
export type WireEdit = z.infer<typeof WireEdit>;

/** A style (LoRA) by name from the list in the instructions, and its strength (1 = as trained). */
export const WireStyle = z.object({
  name: z.string().describe('a style name from the list, exactly as written there'),
  scale: z.number().nullable().describe('strength, -4..4; null = 1'),
});

const StyledRegion = WireRegion.extend({
  styles: z.array(WireStyle).describe('styles for this object only; [] for none'),
});

/** The plan when there are styles: styles for the whole picture and per region. */
export const WirePlanStyled = WirePlan.extend({
  styles: z.array(WireStyle).describe('styles for the whole picture; [] for none'),
  regions: z.array(StyledRegion).describe('one box per object instance'),
});
export type WirePlanStyled = z.infer<typeof WirePlanStyled>;

/** The edit when there are styles: a region's styles set (or cleared with []), null = unchanged. */
export const WireEditStyled = WireEdit.extend({
  update: z.array(
    WireEdit.shape.update.element.extend({
      styles: z.array(WireStyle).nullable().describe("the region's styles from now on; null = unchanged, [] = none"),
    }),
  ),
  add: z.array(StyledRegion),
  styles: z.array(WireStyle).nullable().describe("the whole picture's styles from now on; null = unchanged, [] = none"),
});
export type WireEditStyled = z.infer<typeof WireEditStyled>;

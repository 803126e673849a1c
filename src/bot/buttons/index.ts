import type { ButtonAction } from '../context.ts';
import type { Verb } from '../components.ts';
import { button as continueFrom } from './continue.ts';
import { button as del } from './delete.ts';
import { button as edit } from './edit.ts';
import { button as history } from './history.ts';
import { button as layout } from './layout.ts';
import { button as reroll } from './reroll.ts';
import { button as undo } from './undo.ts';

/** Every button the bot puts under its messages, by the verb in its custom_id. */
export const BUTTONS: ReadonlyMap<Verb, ButtonAction> = new Map(
  [reroll, layout, edit, del, history, undo, continueFrom].map((b) => [b.verb, b] as const),
);

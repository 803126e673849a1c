import type { Edit, Scene } from '../scene/schema.ts';

import type { StyleChoice } from '../planner/styles.ts';

export type { StyleChoice };

export interface PlanOptions {
  width: number;
  height: number;
  maxRegions: number;
  /** The styles there are; none: the planner assigns none. */
  styles?: StyleChoice[];
}

export interface Planned {
  scene: Scene;
  /** How the Scene was made: `llm:<model>` or `offline` (also when the LLM failed and rules took over). */
  planner: string;
  /** Something the user should know about the plan ("the LLM was unreachable; used the offline planner"). */
  note?: string;
}

export interface EditContext {
  /** Earlier instructions and questions in this conversation, oldest first. */
  history: string[];
  /** Regions the previous change was about (what "it" and "them" mean). */
  lastIds: string[];
  /** The styles there are: "make the cat a watercolor" gives the cat that style when "watercolor" is one. */
  styles?: StyleChoice[];
}

export interface EditPlanned {
  edit: Edit;
  planner: string;
}

/**
 * What the bot needs from the planner (src/planner): text → Scene, (Scene, instruction) → Edit, and the
 * layout picture. The bot never talks to the LLM or draws boxes itself.
 */
export interface BotPlanner {
  plan(text: string, options: PlanOptions): Promise<Planned>;
  edit(scene: Scene, instruction: string, options: EditContext): Promise<EditPlanned>;
  /** Boxes with labels over a blank canvas, or over `image` when given (PNG). */
  renderLayout(scene: Scene, image?: Buffer): Promise<Buffer>;
}

import type { Config } from '../config/config.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { Store } from '../store/store.ts';
import type { Generation } from '../store/schema.ts';

/** Who is asking, where: what every check needs, whichever way the request arrived. */
export interface Requester {
  userId: string;
  channelId: string;
  /** The member's role ids; undefined outside a guild. */
  roleIds?: string[];
  /** Whether the member may manage messages in this channel (moderators may control anyone's images). */
  canManageMessages: boolean;
  channelNsfw: boolean;
}

/**
 * Terms refused outside channels marked NSFW, on top of the operator's PROMPT_DENY_LIST. Deliberately
 * short and blunt: it is a floor that respects Discord's rule about NSFW content outside NSFW channels,
 * not a classifier.
 */
const NSFW_TERMS = [
  'nsfw',
  'nude',
  'nudes',
  'naked',
  'nudity',
  'porn',
  'porno',
  'pornographic',
  'hentai',
  'explicit sex',
  'sex scene',
  'topless',
  'genitals',
  'erotic',
];

function containsTerm(text: string, term: string): boolean {
  const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
  return new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}($|[^\\p{L}\\p{N}])`, 'iu').test(text);
}

export class Access {
  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly queue: BotQueue,
  ) {}

  /** Channel and role restrictions. Returns the refusal, or undefined when allowed. */
  where(r: Requester): string | undefined {
    const { allowedChannelIds, allowedRoleIds } = this.config.access;
    if (allowedChannelIds.length && !allowedChannelIds.includes(r.channelId)) {
      return `I only work in ${allowedChannelIds.map((id) => `<#${id}>`).join(', ')}: ask there.`;
    }
    if (allowedRoleIds.length && !r.canManageMessages && !(r.roleIds ?? []).some((id) => allowedRoleIds.includes(id))) {
      return 'You need one of the roles this server allows to use me; ask a moderator.';
    }
    return undefined;
  }

  /** The prompt deny list, and NSFW terms outside NSFW channels. */
  prompt(text: string, r: Pick<Requester, 'channelNsfw'>): string | undefined {
    const denied = this.config.access.promptDenyList.find((t) => containsTerm(text, t));
    if (denied) return 'Your request contains a word or phrase this server does not allow. Rephrase it and try again.';
    if (!r.channelNsfw) {
      const nsfw = NSFW_TERMS.find((t) => containsTerm(text, t));
      if (nsfw) return 'That looks like a request for NSFW content, which I only paint in channels marked NSFW.';
    }
    return undefined;
  }

  /** Cooldown between requests, and how many jobs one user may have waiting or running. */
  async rate(userId: string, { paints }: { paints: boolean }): Promise<string | undefined> {
    const { userCooldownSeconds, userMaxConcurrentJobs } = this.config.limits;
    const last = this.store.lastRequestAt(userId);
    if (last !== undefined && userCooldownSeconds > 0) {
      const wait = last + userCooldownSeconds * 1000 - Date.now();
      if (wait > 0) return `Slow down a little: try again in ${Math.ceil(wait / 1000)} s.`;
    }
    if (paints) {
      const active = await this.queue.activeFor(userId);
      if (active.length >= userMaxConcurrentJobs) {
        return `You already have ${active.length} image${active.length === 1 ? '' : 's'} waiting or painting (the limit is ${userMaxConcurrentJobs}). Wait for one to finish, or delete one.`;
      }
    }
    return undefined;
  }

  /** Only the author may reroll, edit or delete an image, unless moderators or the configuration say otherwise. */
  control(g: Generation, r: Pick<Requester, 'userId' | 'canManageMessages'>): string | undefined {
    if (g.userId === r.userId || r.canManageMessages || this.config.access.allowOthersToEdit) return undefined;
    return `Only <@${g.userId}> (who asked for this image) or a moderator can change it. Use /imagine to make your own.`;
  }
}

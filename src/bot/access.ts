import type { Config } from '../config/config.ts';
import type { Generation } from '../store/schema.ts';

/** Who is asking, where: what every check needs, whichever way the request arrived. */
export interface Requester {
  userId: string;
  /** null in a direct message. */
  guildId: string | null;
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
  constructor(private readonly config: Config) {}

  /** Channel and role restrictions. Returns the refusal, or undefined when allowed. */
  where(r: Requester): string | undefined {
    const { allowedGuildIds, allowedChannelIds, allowedRoleIds } = this.config.access;
    if (allowedGuildIds.length && (r.guildId === null || !allowedGuildIds.includes(r.guildId)))
      return r.guildId === null
        ? 'I do not work in direct messages here: use me in the server that runs me.'
        : 'I am not set up to work in this server.';
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

  /** Only the author may reroll, edit or delete an image, unless moderators or the configuration say otherwise. */
  control(g: Generation, r: Pick<Requester, 'userId' | 'canManageMessages'>): string | undefined {
    if (g.userId === r.userId || r.canManageMessages || this.config.access.allowOthersToEdit) return undefined;
    return `Only <@${g.userId}> (who asked for this image) or a moderator can change it. Use /imagine to make your own.`;
  }
}

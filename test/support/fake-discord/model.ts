// Discord's JSON shapes, as far as the real discord.js client needs them to build its objects.

const DISCORD_EPOCH = 1420070400000n;
let increment = 0n;

/** A snowflake with the real layout (ms since the Discord epoch << 22), so createdTimestamp makes sense. */
export function snowflake(at = Date.now()): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | (1n << 17n) | increment).toString();
}

export const Permission = {
  Administrator: 1n << 3n,
  ViewChannel: 1n << 10n,
  SendMessages: 1n << 11n,
  ManageMessages: 1n << 13n,
  EmbedLinks: 1n << 14n,
  AttachFiles: 1n << 15n,
  ReadMessageHistory: 1n << 16n,
  MentionEveryone: 1n << 17n,
  UseApplicationCommands: 1n << 31n,
} as const;

export const DEFAULT_MEMBER_PERMISSIONS =
  Permission.ViewChannel |
  Permission.SendMessages |
  Permission.EmbedLinks |
  Permission.AttachFiles |
  Permission.ReadMessageHistory |
  Permission.UseApplicationCommands;
export const ALL_PERMISSIONS = (1n << 50n) - 1n;

export const Intent = { Guilds: 1 << 0, GuildMessages: 1 << 9, MessageContent: 1 << 15 } as const;

export interface ApiUser {
  id: string;
  username: string;
  discriminator: string;
  global_name: string | null;
  avatar: null;
  bot?: boolean;
}

export interface ApiRole {
  id: string;
  name: string;
  permissions: string;
  position: number;
  color: number;
  hoist: boolean;
  managed: boolean;
  mentionable: boolean;
  flags: number;
}

export interface ApiChannel {
  id: string;
  type: number;
  guild_id: string;
  name: string;
  position: number;
  permission_overwrites: unknown[];
  nsfw: boolean;
  parent_id: null;
  topic: null;
  last_message_id: string | null;
  rate_limit_per_user: number;
}

export interface ApiMember {
  user: ApiUser;
  roles: string[];
  joined_at: string;
  nick: null;
  avatar: null;
  deaf: boolean;
  mute: boolean;
  flags: number;
  pending: boolean;
  premium_since: null;
  communication_disabled_until: null;
}

export interface ApiAttachment {
  id: string;
  filename: string;
  size: number;
  url: string;
  proxy_url: string;
  content_type: string;
}

export interface ApiMessageReference {
  type: number;
  message_id: string;
  channel_id: string;
  guild_id?: string;
}

export interface ApiMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  author: ApiUser;
  member?: Omit<ApiMember, 'user'>;
  content: string;
  timestamp: string;
  edited_timestamp: string | null;
  tts: boolean;
  mention_everyone: boolean;
  mentions: ApiUser[];
  mention_roles: string[];
  attachments: ApiAttachment[];
  embeds: unknown[];
  components: unknown[];
  pinned: boolean;
  type: number;
  flags: number;
  message_reference?: ApiMessageReference;
  referenced_message?: ApiMessage | null;
  message_snapshots?: unknown[];
  interaction_metadata?: unknown;
  webhook_id?: string;
  application_id?: string;
}

export function user(id: string, username: string, bot = false): ApiUser {
  return { id, username, discriminator: '0', global_name: username, avatar: null, ...(bot ? { bot: true } : {}) };
}

export function member(u: ApiUser, roles: string[]): ApiMember {
  return {
    user: u,
    roles,
    joined_at: new Date(0).toISOString(),
    nick: null,
    avatar: null,
    deaf: false,
    mute: false,
    flags: 0,
    pending: false,
    premium_since: null,
    communication_disabled_until: null,
  };
}

export function role(id: string, name: string, permissions: bigint, position: number): ApiRole {
  return {
    id,
    name,
    permissions: permissions.toString(),
    position,
    color: 0,
    hoist: false,
    managed: false,
    mentionable: false,
    flags: 0,
  };
}

export function textChannel(id: string, guildId: string, name: string, nsfw: boolean): ApiChannel {
  return {
    id,
    type: 0,
    guild_id: guildId,
    name,
    position: 0,
    permission_overwrites: [],
    nsfw,
    parent_id: null,
    topic: null,
    last_message_id: null,
    rate_limit_per_user: 0,
  };
}

export function message(fields: Partial<ApiMessage> & Pick<ApiMessage, 'id' | 'channel_id' | 'author'>): ApiMessage {
  return {
    content: '',
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: [],
    components: [],
    pinned: false,
    type: 0,
    flags: 0,
    ...fields,
  };
}

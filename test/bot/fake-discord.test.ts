// The fake Discord itself, driven by the real discord.js client: if these fail, bot tests mean nothing.
import {
  AttachmentBuilder,
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  Routes,
  SlashCommandBuilder,
  type Message,
} from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeDiscord } from '../support/fake-discord/index.ts';

let fake: FakeDiscord;
let client: Client;

beforeEach(async () => {
  fake = await FakeDiscord.start();
});
afterEach(async () => {
  await client?.destroy();
  await fake.close();
});

async function connect(
  intents = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
): Promise<Client> {
  client = new Client({ intents, rest: { api: fake.restUrl } });
  const ready = new Promise<void>((r) => client.once(Events.ClientReady, () => r()));
  await client.login(fake.token);
  await ready;
  return client;
}

describe('fake Discord with the real discord.js client', () => {
  it('connects through /gateway/bot, identifies with the intents and delivers guilds', async () => {
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    await connect();
    expect(fake.identifies[0]!.intents).toBe(33281);
    await fake.waitFor(() => client.channels.cache.get(channel.id), 'channel in cache');
    expect(fake.requestsTo('GET', /\/gateway\/bot$/)).toHaveLength(1);
  });

  it('refuses a wrong token on REST and on the gateway', async () => {
    client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake.restUrl } });
    await expect(client.login('wrong-token')).rejects.toThrow();
  });

  it('runs a slash command: deferred, edited with a PNG and a button, reply seen with its reference', async () => {
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    const alice = fake.join(guildId, 'alice');
    await connect();
    await client.rest.put(Routes.applicationGuildCommands(fake.applicationId, guildId), {
      body: [
        new SlashCommandBuilder()
          .setName('imagine')
          .setDescription('d')
          .addStringOption((o) => o.setName('prompt').setDescription('p').setRequired(true))
          .toJSON(),
      ],
    });
    let edited: Message | undefined;
    client.on(Events.InteractionCreate, async (ix) => {
      if (!ix.isChatInputCommand()) return;
      expect(ix.attachmentSizeLimit).toBe(8 * 1024 * 1024);
      await ix.deferReply();
      edited = await ix.editReply({
        content: `painting ${ix.options.getString('prompt')}`,
        files: [new AttachmentBuilder(Buffer.from('png-bytes'), { name: 'out.png' })],
        components: [
          new ActionRowBuilder<ButtonBuilder>().addComponents(
            new ButtonBuilder().setCustomId('reroll:g1').setLabel('Reroll').setStyle(ButtonStyle.Primary),
          ),
        ],
      });
    });
    const seen: Message[] = [];
    client.on(Events.MessageCreate, (m) => void (m.author.id !== client.user!.id && seen.push(m)));
    expect(() => fake.slashCommand(alice, channel.id, 'imagine', {})).toThrow(/required/);
    const ix = fake.slashCommand(alice, channel.id, 'imagine', { prompt: 'a cat' });
    await fake.waitFor(() => edited, 'editReply');
    expect(ix.ackType).toBe(5);
    expect(ix.ackMs).toBeLessThan(3000);
    const original = fake.messages.get(ix.originalMessageId!)!;
    expect(edited!.id).toBe(original.id);
    expect(original.content).toBe('painting a cat');
    expect(original.attachments).toHaveLength(1);
    expect(fake.attachmentBytes(original.attachments[0]!).toString()).toBe('png-bytes');
    expect(fake.requestsTo('PATCH', /\/webhooks\/\d+\/[^/]+\/messages\/@original$/)[0]!.files[0]!.filename).toBe(
      'out.png',
    );

    fake.userMessage(alice, channel.id, 'make it blue', { replyTo: original.id });
    fake.userMessage(alice, channel.id, '', { replyTo: original.id, forward: true });
    const [reply, forward] = await fake.waitFor(() => seen.length >= 2 && seen, 'messages');
    expect(reply!.content).toBe('make it blue');
    expect(reply!.reference).toMatchObject({ messageId: original.id, type: 0 });
    expect(forward!.reference).toMatchObject({ messageId: original.id, type: 1 });
    const ref = await reply!.fetchReference();
    expect(ref.id).toBe(original.id);

    const clicked = new Promise<string>((r) =>
      client.on(Events.InteractionCreate, (i) => void (i.isButton() && i.deferUpdate().then(() => r(i.customId)))),
    );
    fake.clickButton(alice, original.id, 'reroll:g1');
    expect(await clicked).toBe('reroll:g1');
  });

  it('hides content without the MessageContent intent unless the bot is mentioned', async () => {
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    const alice = fake.join(guildId, 'alice');
    await connect([GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages]);
    const seen: Message[] = [];
    client.on(Events.MessageCreate, (m) => void seen.push(m));
    fake.userMessage(alice, channel.id, 'hello');
    fake.userMessage(alice, channel.id, 'draw a cat', { mentionBot: true });
    await fake.waitFor(() => seen.length >= 2, 'messages');
    expect(seen[0]!.content).toBe('');
    expect(seen[1]!.content).toContain('draw a cat');
    expect(seen[1]!.mentions.users.has(client.user!.id)).toBe(true);
  });

  it('rejects a late acknowledgement, a second one, and webhook edits with an expired token', async () => {
    await fake.close();
    fake = await FakeDiscord.start({ ackDeadlineMs: 100 });
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    const alice = fake.join(guildId, 'alice');
    await connect();
    await client.rest.put(Routes.applicationGuildCommands(fake.applicationId, guildId), {
      body: [{ name: 'ping', description: 'p', type: 1 }],
    });
    const errors: string[] = [];
    client.on(Events.InteractionCreate, async (ix) => {
      if (!ix.isChatInputCommand()) return;
      try {
        if (ix.options.data.length === 0 && errors.length === 0) await new Promise((r) => setTimeout(r, 200));
        await ix.deferReply({ flags: MessageFlags.Ephemeral });
        fake.expireToken(ix.token);
        await ix.editReply('late');
      } catch (e) {
        errors.push(String((e as { code?: number }).code));
      }
    });
    fake.slashCommand(alice, channel.id, 'ping');
    await fake.waitFor(() => errors.length >= 1, 'late ack error');
    expect(errors[0]).toBe('10062');
    fake.slashCommand(alice, channel.id, 'ping');
    await fake.waitFor(() => errors.length >= 2, 'expired token error');
    expect(errors[1]).toBe('50027');
  });

  it('channel messages: reply references, unknown references, edits of own messages only', async () => {
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    const alice = fake.join(guildId, 'alice');
    await connect();
    const userMsg = fake.userMessage(alice, channel.id, 'hi');
    const ch = await client.channels.fetch(channel.id);
    if (!ch?.isSendable()) throw new Error('not sendable');
    const sent = await ch.send({
      content: 'answer',
      reply: { messageReference: userMsg.id },
      allowedMentions: { parse: [] },
      files: [new AttachmentBuilder(Buffer.from('a'), { name: 'a.png' })],
    });
    expect(fake.messages.get(sent.id)!.message_reference).toMatchObject({ message_id: userMsg.id, type: 0 });
    expect(fake.lastAllowedMentions.get(sent.id)).toEqual({ parse: [] });
    const edited = await sent.edit({
      content: 'answer 2',
      files: [new AttachmentBuilder(Buffer.from('b'), { name: 'b.png' })],
    });
    expect(edited.attachments.map((a) => a.name)).toEqual(['b.png']);
    await expect(ch.send({ content: 'x', reply: { messageReference: '123456789012345678' } })).rejects.toThrow(
      /Invalid Form Body|Unknown message/,
    );
    const theirs = await ch.messages.fetch(userMsg.id);
    await expect(theirs.edit('hijack')).rejects.toThrow();
  });
});

/** Small English word lists and inflection rules for the offline planner, editor and reference resolver. */

export const NUMBER_WORDS: Record<string, number> = {
  one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17,
  eighteen: 18, nineteen: 19, twenty: 20, dozen: 12, both: 2, couple: 2, few: 3, several: 3,
};

/** Words before a plural noun that name a crowd rather than a count: one region for the whole group. */
export const GROUP_WORDS = new Set(['many', 'lots', 'lot', 'bunch', 'group', 'flock', 'herd', 'crowd', 'pack', 'swarm', 'school', 'pile', 'stack', 'row', 'line', 'bouquet', 'field', 'forest', 'army', 'fleet', 'numerous', 'countless', 'dozens', 'hundreds', 'thousands']);

export const ORDINALS: Record<string, number> = {
  first: 1, '1st': 1, second: 2, '2nd': 2, third: 3, '3rd': 3, fourth: 4, '4th': 4, fifth: 5, '5th': 5,
  sixth: 6, '6th': 6, seventh: 7, '7th': 7, eighth: 8, '8th': 8, ninth: 9, tenth: 10,
};

export const COLOURS = new Set([
  'red', 'orange', 'yellow', 'green', 'blue', 'purple', 'violet', 'pink', 'brown', 'black', 'white', 'gray', 'grey',
  'golden', 'gold', 'silver', 'beige', 'teal', 'turquoise', 'cyan', 'magenta', 'maroon', 'navy', 'crimson', 'scarlet',
  'lavender', 'lilac', 'olive', 'lime', 'indigo', 'amber', 'bronze', 'copper', 'cream', 'ivory', 'tan', 'khaki',
  'emerald', 'azure', 'coral', 'peach', 'mint', 'rainbow', 'multicolored', 'multicoloured', 'colorful', 'colourful',
  'striped', 'spotted', 'tabby', 'ginger', 'blonde', 'blond', 'brunette', 'dark', 'light', 'pale', 'bright',
]);

/** Adjectives that may precede a noun; used to tell "a red flying car" from "a car flying". */
export const ADJECTIVES = new Set([
  ...COLOURS, 'big', 'small', 'large', 'tiny', 'huge', 'giant', 'little', 'tall', 'short', 'long', 'old', 'young', 'new',
  'cute', 'fluffy', 'furry', 'shiny', 'wooden', 'metal', 'glass', 'plastic', 'stone', 'marble', 'leather', 'ceramic',
  'happy', 'sad', 'angry', 'sleepy', 'wet', 'dry', 'hot', 'cold', 'ripe', 'fresh', 'rusty', 'vintage', 'modern',
  'ancient', 'fat', 'thin', 'round', 'square', 'wild', 'baby', 'friendly', 'majestic', 'elegant', 'beautiful',
  'ugly', 'scary', 'wise', 'brave', 'lonely', 'broken', 'empty', 'full', 'open', 'closed', 'steaming', 'glowing',
]);

export const SIZE_WORDS: Record<string, number> = { bigger: 1.3, larger: 1.3, big: 1.3, huge: 1.6, smaller: 0.75, small: 0.75, tiny: 0.5, taller: 1.3, shorter: 0.75 };

/** Things drawn taller than wide, and wider than tall (box aspect = width / height in pixels). */
const TALL = ['person', 'man', 'woman', 'girl', 'boy', 'child', 'kid', 'lady', 'gentleman', 'king', 'queen', 'knight',
  'wizard', 'astronaut', 'soldier', 'robot', 'tree', 'bottle', 'lamp', 'tower', 'giraffe', 'vase', 'glass', 'candle',
  'lighthouse', 'door', 'statue', 'skyscraper', 'rocket', 'cactus', 'flower', 'sunflower', 'penguin', 'cup', 'mug',
  'ballerina', 'dancer', 'chef', 'doctor', 'warrior', 'princess', 'prince', 'scarecrow', 'snowman', 'owl', 'bear',
  'palm', 'column', 'pillar', 'mannequin', 'teddy', 'meerkat', 'clock', 'fountain'];
const WIDE = ['car', 'bus', 'truck', 'sofa', 'couch', 'table', 'bench', 'boat', 'ship', 'train', 'bed', 'horse', 'cow',
  'sheep', 'pig', 'dog', 'crocodile', 'alligator', 'whale', 'shark', 'dolphin', 'fish', 'lizard', 'snake', 'airplane',
  'plane', 'tank', 'bridge', 'house', 'cake', 'pizza', 'bread', 'laptop', 'piano', 'keyboard', 'motorcycle',
  'bicycle', 'bike', 'elephant', 'lion', 'tiger', 'wolf', 'fox', 'deer', 'camel', 'canoe', 'sandwich', 'hot dog', 'log',
  'rug', 'carpet', 'dragon'];

export function aspectOf(head: string): number {
  if (TALL.includes(head)) return 0.6;
  if (WIDE.includes(head)) return 1.5;
  return 1;
}

/** Nouns that "with" attaches to the previous object ("a cat with a hat") instead of starting a new one. */
export const ATTACHMENTS = new Set([
  'hat', 'cap', 'scarf', 'collar', 'glasses', 'sunglasses', 'hair', 'eyes', 'eye', 'beard', 'mustache', 'moustache',
  'tail', 'wings', 'wing', 'umbrella', 'bow', 'tie', 'crown', 'helmet', 'jacket', 'coat', 'dress', 'shirt', 'backpack',
  'bag', 'handbag', 'sword', 'shield', 'cape', 'mask', 'horns', 'horn', 'spots', 'stripes', 'fur', 'feathers', 'leash',
  'saddle', 'lid', 'handle', 'frosting', 'icing', 'candles', 'sprinkles', 'topping', 'toppings', 'sauce', 'smile',
  'tattoo', 'tattoos', 'necklace', 'earrings', 'ring', 'gloves', 'boots', 'shoes', 'apron', 'uniform', 'armor', 'armour',
  'suit', 'skirt', 'pants', 'jeans', 'vest', 'robe', 'veil', 'ribbon', 'bell', 'ears', 'paws', 'whiskers', 'petals',
  'leaves', 'steam', 'straw', 'lemon', 'slice', 'foam', 'cream', 'flag', 'sail', 'sails', 'wheels', 'headphones', 'camera',
]);

/** Participles that start a description after the noun ("a dog chasing a ball"). */
export const PARTICIPLES = new Set([
  'wearing', 'holding', 'sitting', 'standing', 'lying', 'laying', 'playing', 'eating', 'drinking', 'reading', 'running',
  'jumping', 'flying', 'swimming', 'riding', 'carrying', 'looking', 'walking', 'sleeping', 'chasing', 'watching',
  'hugging', 'singing', 'dancing', 'smiling', 'crying', 'laughing', 'fighting', 'climbing', 'floating', 'hanging',
  'leaning', 'resting', 'perched', 'curled', 'painting', 'writing', 'cooking', 'driving', 'pulling', 'pushing',
  'facing', 'staring', 'gazing', 'made', 'filled', 'covered', 'dressed', 'shaped', 'wrapped', 'surrounded', 'glowing',
  'roaring', 'barking', 'grazing', 'parked', 'waving', 'kneeling', 'peeking', 'blooming', 'melting', 'burning', 'sipping',
  'juggling', 'playing', 'fishing', 'surfing', 'skiing', 'skating', 'howling', 'smoking', 'steaming', 'sleeping',
]);

const IRREGULAR: Record<string, string> = {
  people: 'person', men: 'man', women: 'woman', children: 'child', mice: 'mouse', geese: 'goose', teeth: 'tooth',
  feet: 'foot', oxen: 'ox', cacti: 'cactus', fungi: 'fungus', knives: 'knife', wives: 'wife', leaves: 'leaf',
  wolves: 'wolf', loaves: 'loaf', shelves: 'shelf', calves: 'calf', halves: 'half', elves: 'elf', scarves: 'scarf',
  thieves: 'thief', lives: 'life', potatoes: 'potato', tomatoes: 'tomato', heroes: 'hero', mangoes: 'mango',
  volcanoes: 'volcano', echoes: 'echo', torpedoes: 'torpedo', buffaloes: 'buffalo', mosquitoes: 'mosquito',
  dice: 'die', kids: 'kid', tvs: 'tv', pcs: 'pc', cds: 'cd', buses: 'bus', gases: 'gas', lenses: 'lens', octopuses: 'octopus', octopi: 'octopus',
  cookies: 'cookie', movies: 'movie', pies: 'pie', ties: 'tie', zombies: 'zombie', brownies: 'brownie',
  smoothies: 'smoothie', hoodies: 'hoodie', selfies: 'selfie', goalies: 'goalie', collies: 'collie', beanies: 'beanie',
  budgies: 'budgie', calories: 'calorie', lassies: 'lassie', hippies: 'hippie', genies: 'genie', fairies: 'fairy',
  dwarves: 'dwarf', hooves: 'hoof', bosses: 'boss', glasses: 'glass', dresses: 'dress', species: 'species',
};

const UNCHANGED = new Set(['sheep', 'fish', 'deer', 'moose', 'series', 'species', 'aircraft', 'bison', 'salmon', 'trout', 'swine', 'squid', 'shrimp']);
const NOT_PLURAL = /(ss|us|is|ous|ics|news|pants|jeans|shorts|scissors|clothes)$/;

/** The singular of an English noun (rules plus exceptions; good enough for object labels). */
export function singularize(word: string): string {
  const w = word.toLowerCase();
  if (IRREGULAR[w]) return IRREGULAR[w];
  // Compounds of man and woman: snowmen, firemen, policewomen.
  if (/[a-z]{2,}men$/.test(w) && !/(amen|omen|umen|lumen|specimen|regimen|semen|stamen)$/.test(w.replace(/women$/, 'woman'))) return `${w.slice(0, -3)}man`;
  if (UNCHANGED.has(w) || w.length <= 3 || NOT_PLURAL.test(w)) return w;
  if (w.endsWith('ies') && w.length > 4) return `${w.slice(0, -3)}y`;
  if (/(sses|xes|zes|ches|shes)$/.test(w)) return w.slice(0, -2);
  if (w.endsWith('s') && !w.endsWith('ss')) return w.slice(0, -1);
  return w;
}

export function isPluralNoun(word: string): boolean {
  const w = word.toLowerCase();
  return !UNCHANGED.has(w) && singularize(w) !== w;
}

const PLURAL_IRREGULAR = Object.fromEntries(Object.entries(IRREGULAR).map(([p, s]) => [s, p]));

export function pluralize(word: string): string {
  const w = word.toLowerCase();
  if (UNCHANGED.has(w)) return w;
  if (PLURAL_IRREGULAR[w]) return PLURAL_IRREGULAR[w];
  if (/[a-z]{2,}man$/.test(w) && !/(human|german|roman|shaman|talisman|ottoman)$/.test(w)) return `${w.slice(0, -3)}men`;
  if (/[^aeiou]y$/.test(w)) return `${w.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(w)) return `${w}es`;
  return `${w}s`;
}

/** "a" or "an" for the word that follows (by sound for the common exceptions). */
export function article(next: string): 'a' | 'an' {
  const w = next.toLowerCase();
  if (/^(hour|honest|honou?r|heir)/.test(w)) return 'an';
  if (/^(uni|use|usu|uti|euro|one|once|ufo|u-)/.test(w)) return 'a';
  return /^[aeiou]/.test(w) ? 'an' : 'a';
}

export function withArticle(phrase: string): string {
  const p = phrase.trim();
  if (/^(a|an|the)\s/i.test(p)) return p.replace(/^(a|an)\s+(\S+)/i, (_, _a: string, w: string) => `${article(w)} ${w}`);
  return `${article(p)} ${p}`;
}

export function stripArticle(phrase: string): string {
  return phrase.trim().replace(/^(a|an|the|some)\s+/i, '');
}

export function capitalize(s: string): string {
  return s ? s[0]!.toUpperCase() + s.slice(1) : s;
}

/** Style nouns that turn "an X of ..." into a style ("an oil painting of ...") rather than an object. */
export const STYLE_PHRASES = [
  'oil painting', 'acrylic painting', 'watercolor painting', 'watercolour painting', 'watercolor', 'watercolour',
  'painting', 'pencil sketch', 'pencil drawing', 'charcoal drawing', 'ink drawing', 'sketch', 'drawing', 'photograph',
  'photo', 'polaroid', 'render', '3d render', 'illustration', 'digital painting', 'digital art', 'digital illustration',
  'cartoon', 'anime illustration', 'anime drawing', 'anime picture', 'comic panel', 'comic book panel', 'pixel art',
  'poster', 'mosaic', 'stained glass window', 'woodcut', 'engraving', 'linocut', 'ukiyo-e print', 'print', 'mural',
  'low poly render', 'claymation scene', 'vector illustration', 'concept art', 'matte painting', 'fresco', 'tapestry',
];

/** Words that name a look rather than a thing, for "…, pixel art" and "… in anime style". */
export const STYLE_WORDS = [
  'oil painting', 'watercolor', 'watercolour', 'pixel art', 'anime', 'manga', 'cartoon', '3d render', 'digital art',
  'photorealistic', 'photograph', 'photo', 'cinematic', 'sketch', 'illustration', 'impressionist', 'impressionism',
  'cubist', 'cubism', 'surreal', 'surrealist', 'art nouveau', 'art deco', 'vaporwave', 'cyberpunk', 'steampunk',
  'studio ghibli', 'ghibli', 'pop art', 'low poly', 'isometric', 'minimalist', 'vintage', 'noir', 'ukiyo-e',
  'baroque', 'renaissance', 'pastel', 'neon', 'comic', 'claymation', 'lego', 'origami', 'stained glass', 'charcoal',
  'pencil drawing', 'ink', 'gouache', 'acrylic', 'hyperrealistic', 'realistic', 'fantasy', 'sci-fi', 'gothic',
];

/** Picture nouns that carry no style ("a picture of ..."). */
export const NEUTRAL_PICTURE_WORDS = new Set(['picture', 'image', 'scene', 'view', 'shot', 'photo of a scene']);

/** Heads that put an object in the upper part of the picture and name part of the background. */
export const SKY_WORDS = new Set(['sky', 'air', 'clouds', 'heavens', 'space']);

/** Nouns that are places or surfaces (settings) rather than objects when they follow on/in/at. */
export const TIME_WORDS = new Set(['sunset', 'sunrise', 'dawn', 'dusk', 'night', 'noon', 'midnight', 'twilight', 'daytime', 'nighttime', 'morning', 'evening', 'winter', 'summer', 'autumn', 'fall', 'spring']);

/** Nouns that name a place: drawn as the background, never boxed ("a park", "a kitchen"). */
export const PLACES = new Set([
  'park', 'street', 'kitchen', 'beach', 'forest', 'woods', 'city', 'room', 'field', 'desert', 'ocean', 'sea', 'garden',
  'village', 'town', 'meadow', 'valley', 'landscape', 'cityscape', 'skyline', 'jungle', 'countryside', 'road', 'alley',
  'square', 'market', 'library', 'classroom', 'office', 'bedroom', 'bathroom', 'cafe', 'café', 'restaurant', 'bar',
  'shop', 'store', 'station', 'airport', 'harbor', 'harbour', 'port', 'island', 'lake', 'river', 'sky', 'space',
  'snow', 'rain', 'fog', 'mist', 'night', 'sunset', 'sunrise', 'dawn', 'dusk', 'living room', 'hallway', 'corridor',
  'stage', 'studio', 'arena', 'stadium', 'playground', 'farm', 'barn', 'cave', 'canyon', 'cliff', 'hill', 'hills',
  'mountains', 'grass', 'lawn', 'pond', 'swamp', 'marsh', 'savanna', 'savannah', 'tundra', 'glacier', 'underwater',
  'background', 'scene', 'interior', 'courtyard', 'rooftop', 'highway', 'bridge', 'tunnel', 'subway', 'church',
  'cathedral', 'temple', 'castle courtyard', 'battlefield', 'universe', 'galaxy', 'moon', 'planet', 'shore', 'coast',
]);

/** Small things get smaller boxes (scale of the slot they are given). */
export const SMALL_THINGS = new Set([
  'apple', 'orange', 'lemon', 'banana', 'pear', 'peach', 'plum', 'cherry', 'strawberry', 'egg', 'ball', 'cup', 'mug',
  'glass', 'bird', 'butterfly', 'bee', 'flower', 'rose', 'tulip', 'coin', 'key', 'phone', 'candle', 'bottle', 'can',
  'mouse', 'frog', 'snail', 'ladybug', 'spider', 'donut', 'doughnut', 'cupcake', 'cookie', 'muffin', 'toy', 'dice',
  'die', 'ring', 'watch', 'book', 'vase', 'teacup', 'bowl', 'plate', 'shell', 'stone', 'rock', 'pebble', 'acorn',
  'mushroom', 'hamster', 'kitten', 'puppy', 'chick', 'duckling', 'hat', 'shoe', 'sock', 'balloon',
]);

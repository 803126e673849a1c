/**
 * The planner evaluation's prompts: LMD's four categories (negation, numeracy, attribute binding, spatial
 * relations), each prompt with what a correct layout must show. Written as templates over object, colour
 * and place lists, expanded with a fixed seed, so the sets are reproducible and their expectations exact.
 *
 * Two splits with different sentence shapes (and, for part of it, different words): `dev` is what the
 * planner may be tuned on; `heldout` is never looked at while tuning, to tell grammar from memorised lists.
 */

/** LMD's four categories, then the caption and comparison splits' kinds (eval/captions.ts). */
export type LmdCategory = 'negation' | 'numeracy' | 'attribution' | 'spatial';
export type Category = LmdCategory | 'single' | 'two-kinds' | 'caption-spatial' | 'comparison' | 'crowd';
export type Rel = 'left' | 'right' | 'above' | 'below';

export interface EvalCase {
  id: string;
  split: 'dev' | 'heldout' | 'captions' | 'comparisons';
  category: Category;
  prompt: string;
  /** Each named object: how many boxes it must have, and the attributes every one of its boxes carries. */
  objects: { name: string; count: number; attributes?: string[] }[];
  /** Judged on box centres: `a` is `rel` of `b`. */
  relations?: { a: string; rel: Rel; b: string }[];
  /** Must have no box, and must be in `exclude`. */
  negated?: string[];
  /** Words that must never be a region's noun (verbs, activities, quantities, colours, parts). */
  absent?: string[];
  /** LayoutGPT's comparison rule: the counts of `a` and `b` (from the labels) satisfy the relation. */
  compare?: { a: string; rel: 'more' | 'fewer' | 'equal' | 'times'; b: string; k?: number; diff?: number };
  /** Objects drawn as one crowd region (their one box is already in `objects`). */
  crowd?: string[];
}

// Objects as people name them (singular, plural). Multi-word names are matched as a whole.
const OBJECTS: [string, string][] = [
  ['cat', 'cats'],
  ['dog', 'dogs'],
  ['car', 'cars'],
  ['chair', 'chairs'],
  ['cup', 'cups'],
  ['bottle', 'bottles'],
  ['bowl', 'bowls'],
  ['book', 'books'],
  ['laptop', 'laptops'],
  ['backpack', 'backpacks'],
  ['bench', 'benches'],
  ['bicycle', 'bicycles'],
  ['bird', 'birds'],
  ['boat', 'boats'],
  ['bus', 'buses'],
  ['cake', 'cakes'],
  ['clock', 'clocks'],
  ['elephant', 'elephants'],
  ['giraffe', 'giraffes'],
  ['horse', 'horses'],
  ['kite', 'kites'],
  ['motorcycle', 'motorcycles'],
  ['pizza', 'pizzas'],
  ['sheep', 'sheep'],
  ['skateboard', 'skateboards'],
  ['suitcase', 'suitcases'],
  ['teddy bear', 'teddy bears'],
  ['train', 'trains'],
  ['truck', 'trucks'],
  ['umbrella', 'umbrellas'],
  ['vase', 'vases'],
  ['zebra', 'zebras'],
  ['apple', 'apples'],
  ['banana', 'bananas'],
  ['donut', 'donuts'],
  ['keyboard', 'keyboards'],
  ['toaster', 'toasters'],
  ['wine glass', 'wine glasses'],
  ['cow', 'cows'],
  ['bear', 'bears'],
  ['lamp', 'lamps'],
  ['pumpkin', 'pumpkins'],
  ['balloon', 'balloons'],
  ['candle', 'candles'],
  ['guitar', 'guitars'],
  ['penguin', 'penguins'],
  ['duck', 'ducks'],
  ['rabbit', 'rabbits'],
  ['tree', 'trees'],
  ['mug', 'mugs'],
  ['television', 'televisions'],
  ['sofa', 'sofas'],
  ['table', 'tables'],
  ['ball', 'balls'],
  ['hat', 'hats'],
  ['fox', 'foxes'],
];
// Only in the held-out split.
const HELDOUT_OBJECTS: [string, string][] = [
  ['fire hydrant', 'fire hydrants'],
  ['traffic light', 'traffic lights'],
  ['potted plant', 'potted plants'],
  ['owl', 'owls'],
  ['tractor', 'tractors'],
  ['lantern', 'lanterns'],
  ['violin', 'violins'],
  ['toy robot', 'toy robots'],
  ['frog', 'frogs'],
  ['sandwich', 'sandwiches'],
  ['basket', 'baskets'],
  ['snowman', 'snowmen'],
  ['piano', 'pianos'],
  ['flamingo', 'flamingos'],
  ['helicopter', 'helicopters'],
  ['mushroom', 'mushrooms'],
  ['camera', 'cameras'],
  ['doll', 'dolls'],
  ['turtle', 'turtles'],
];
const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white', 'gray'];
const HELDOUT_COLOURS = ['silver', 'golden', 'beige', 'teal', 'navy', 'turquoise', 'crimson', 'violet'];
const MATERIALS = ['wooden', 'metal', 'glass', 'plastic', 'striped', 'spotted'];
const PLACES = [
  'kitchen',
  'park',
  'street',
  'beach',
  'living room',
  'forest',
  'garden',
  'office',
  'bedroom',
  'field',
  'desert',
  'classroom',
  'library',
  'meadow',
];
const NUMBERS = ['one', 'two', 'three', 'four', 'five'];

/** mulberry32: a small seeded generator, so the sets never change. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const an = (w: string) => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);

interface Pick {
  obj(): [string, string];
  objs(n: number): [string, string][];
  colour(): string;
  colours(n: number): string[];
  material(): string;
  place(): string;
  number(min?: number, max?: number): number;
}

function picker(next: () => number, objects: [string, string][], colours: string[]): Pick {
  const one = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)]!;
  const distinct = <T>(xs: T[], n: number, key: (x: T) => string) => {
    const out: T[] = [];
    while (out.length < n) {
      const x = one(xs);
      // "dog" and "hot dog", "bear" and "teddy bear": one name must not contain the other.
      if (!out.some((o) => key(o).includes(key(x)) || key(x).includes(key(o)))) out.push(x);
    }
    return out;
  };
  return {
    obj: () => one(objects),
    objs: (n) => distinct(objects, n, (o) => o[0]),
    colour: () => one(colours),
    colours: (n) => distinct(colours, n, (c) => c),
    material: () => one(MATERIALS),
    place: () => one(PLACES),
    number: (min = 1, max = 5) => min + Math.floor(next() * (max - min + 1)),
  };
}

type Template = (p: Pick) => Omit<EvalCase, 'id' | 'split' | 'category'>;

const word = (n: number) => NUMBERS[n - 1] ?? String(n);
const noun = (o: [string, string], n: number) => (n === 1 ? o[0] : o[1]);

const SPATIAL_PAIRS: [string, Rel][] = [
  ['left', 'left'],
  ['right', 'right'],
  ['top', 'above'],
  ['bottom', 'below'],
];
const opposite: Record<string, string> = { left: 'right', right: 'left', top: 'bottom', bottom: 'top' };

const DEV: Record<LmdCategory, Template[]> = {
  negation: [
    (p) => {
      const o = p.obj();
      return { prompt: `A realistic photo of a scene without ${o[1]}`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const o = p.obj();
      return { prompt: `a ${p.place()} without any ${o[1]}`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const o = p.obj();
      return { prompt: `a ${p.place()} with no ${o[1]}`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} in a ${p.place()}, no ${b![1]}`,
        objects: [{ name: a![0], count: 1 }],
        negated: [b![0]],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(2, 4);
      return { prompt: `${word(n)} ${a![1]} but no ${b![1]}`, objects: [{ name: a![0], count: n }], negated: [b![0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return { prompt: `a ${p.place()}, without ${a![1]} or ${b![1]}`, objects: [], negated: [a![0], b![0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const c = p.colour();
      return {
        prompt: `${an(c)} ${a![0]} and no ${b![1]}`,
        objects: [{ name: a![0], count: 1, attributes: [c] }],
        negated: [b![0]],
      };
    },
    (p) => {
      const o = p.obj();
      return { prompt: `there are no ${o[1]} in the ${p.place()}`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} but not a single ${b![0]}`,
        objects: [{ name: a![0], count: 1 }],
        negated: [b![0]],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} on a ${p.place() === 'beach' ? 'beach' : 'lawn'} with no ${b![1]} around`,
        objects: [{ name: a![0], count: 1 }],
        negated: [b![0]],
      };
    },
  ],
  numeracy: [
    (p) => {
      const o = p.obj(),
        n = p.number();
      return {
        prompt: `A realistic photo of a scene with ${word(n)} ${noun(o, n)}`,
        objects: [{ name: o[0], count: n }],
      };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 6);
      return { prompt: `${word(n)} ${o[1]}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(1, 4),
        m = p.number(1, 3);
      return {
        prompt: `${word(n)} ${noun(a!, n)} and ${word(m)} ${noun(b!, m)}`,
        objects: [
          { name: a![0], count: n },
          { name: b![0], count: m },
        ],
      };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 6);
      return { prompt: `${n} ${o[1]} in a ${p.place()}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 5);
      return { prompt: `there are ${word(n)} ${o[1]} in the ${p.place()}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(2, 4);
      return {
        prompt: `${an(a![0])} and ${word(n)} ${b![1]}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: n },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(1, 3),
        m = p.number(1, 3);
      const c = p.colour();
      return {
        prompt: `${word(n)} ${c} ${noun(a!, n)} next to ${word(m)} ${noun(b!, m)}`,
        objects: [
          { name: a![0], count: n, attributes: [c] },
          { name: b![0], count: m },
        ],
      };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 5);
      return { prompt: `exactly ${word(n)} ${o[1]}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(3, 5);
      return { prompt: `a group of ${word(n)} ${o[1]}`, objects: [{ name: o[0], count: n }] };
    },
  ],
  attribution: [
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `A realistic photo of a scene with ${an(c!)} ${a![0]} and ${an(d!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `${an(c!)} ${a![0]} next to ${an(d!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b, e] = p.objs(3);
      const [c, d, f] = p.colours(3);
      return {
        prompt: `${an(c!)} ${a![0]}, ${an(d!)} ${b![0]} and ${an(f!)} ${e![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
          { name: e![0], count: 1, attributes: [f!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `a ${a![0]} that is ${c} and a ${b![0]} that is ${d}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const m = p.material(),
        d = p.colour();
      return {
        prompt: `a ${m} ${a![0]} beside ${an(d)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [m] },
          { name: b![0], count: 1, attributes: [d] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `${an(c!)} ${a![0]} to the left of ${an(d!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `a big ${c} ${a![0]} and a small ${d} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `two ${c} ${a![1]} and ${an(d!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 2, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
  ],
  spatial: [
    ...SPATIAL_PAIRS.map(([loc, rel]): Template => (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `A realistic photo of a scene with ${an(a![0])} on the ${loc} and ${an(b![0])} on the ${opposite[loc]}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel, b: b![0] }],
      };
    }),
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} to the left of ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'left', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} to the right of ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'right', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} above ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} below ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'below', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `on the left ${an(a![0])}, on the right ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'left', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} at the top and ${an(b![0])} at the bottom`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} sitting on top of ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} under ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'below', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const c = p.colour();
      return {
        prompt: `${an(c)} ${a![0]} on the right and ${an(b![0])} on the left in a ${p.place()}`,
        objects: [
          { name: a![0], count: 1, attributes: [c] },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'right', b: b![0] }],
      };
    },
  ],
};

const HELDOUT: Record<LmdCategory, Template[]> = {
  negation: [
    (p) => {
      const o = p.obj();
      return { prompt: `a ${p.place()} free of ${o[1]}`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return { prompt: `${an(a![0])} without ${an(b![0])}`, objects: [{ name: a![0], count: 1 }], negated: [b![0]] };
    },
    (p) => {
      const [a, b, c] = p.objs(3);
      return {
        prompt: `${an(a![0])} and ${an(b![0])} but without ${c![1]}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        negated: [c![0]],
      };
    },
    (p) => {
      const o = p.obj();
      return { prompt: `a photo of an empty ${p.place()} with no ${o[1]} at all`, objects: [], negated: [o[0]] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(2, 3);
      return { prompt: `${word(n)} ${a![1]}, and no ${b![1]}`, objects: [{ name: a![0], count: n }], negated: [b![0]] };
    },
  ],
  numeracy: [
    (p) => {
      const o = p.obj(),
        n = p.number(2, 5);
      return { prompt: `a photo of ${word(n)} ${o[1]} in the ${p.place()}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const [a, b, c] = p.objs(3);
      const n = p.number(1, 2),
        m = p.number(1, 2),
        k = p.number(1, 2);
      return {
        prompt: `${word(n)} ${noun(a!, n)}, ${word(m)} ${noun(b!, m)} and ${word(k)} ${noun(c!, k)}`,
        objects: [
          { name: a![0], count: n },
          { name: b![0], count: m },
          { name: c![0], count: k },
        ],
      };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 5);
      return { prompt: `${word(n)} ${o[1]} standing in a row`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const o = p.obj(),
        n = p.number(2, 6);
      return { prompt: `a picture with ${n} ${o[1]}`, objects: [{ name: o[0], count: n }] };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const n = p.number(2, 4);
      return {
        prompt: `${word(n)} ${a![1]} beside ${an(b![0])}`,
        objects: [
          { name: a![0], count: n },
          { name: b![0], count: 1 },
        ],
      };
    },
  ],
  attribution: [
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `${an(c!)} ${a![0]} and a ${b![0]} which is ${d}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d, e] = p.colours(3);
      return {
        prompt: `${an(c!)} and ${d} ${a![0]} next to ${an(e!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!, d!] },
          { name: b![0], count: 1, attributes: [e!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `there is ${an(c!)} ${a![0]} and ${an(d!)} ${b![0]} in the ${p.place()}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const [c, d] = p.colours(2);
      return {
        prompt: `${an(c!)} ${a![0]} near ${an(d!)} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [c!] },
          { name: b![0], count: 1, attributes: [d!] },
        ],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      const m = p.material(),
        d = p.colour();
      return {
        prompt: `${an(d)} ${a![0]} behind a ${m} ${b![0]}`,
        objects: [
          { name: a![0], count: 1, attributes: [d] },
          { name: b![0], count: 1, attributes: [m] },
        ],
      };
    },
  ],
  spatial: [
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} is to the left of ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'left', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} on the right side of ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'right', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} beneath ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'below', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `to the left of ${an(b![0])} there is ${an(a![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'left', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} on the bottom and ${an(b![0])} on the top`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'below', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} positioned above ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} in the top half of the image and ${an(b![0])} in the bottom half`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
    (p) => {
      const [a, b] = p.objs(2);
      return {
        prompt: `${an(a![0])} hanging over ${an(b![0])}`,
        objects: [
          { name: a![0], count: 1 },
          { name: b![0], count: 1 },
        ],
        relations: [{ a: a![0], rel: 'above', b: b![0] }],
      };
    },
  ],
};

const CATEGORIES: LmdCategory[] = ['negation', 'numeracy', 'attribution', 'spatial'];

function expand(split: 'dev' | 'heldout', perCategory: number, seed: number): EvalCase[] {
  const next = rng(seed);
  const templates = split === 'dev' ? DEV : HELDOUT;
  const objects = split === 'dev' ? OBJECTS : [...OBJECTS, ...HELDOUT_OBJECTS];
  const colours = split === 'dev' ? COLOURS : [...COLOURS, ...HELDOUT_COLOURS];
  const p = picker(next, objects, colours);
  const out: EvalCase[] = [];
  for (const category of CATEGORIES) {
    const ts = templates[category];
    for (let i = 0; i < perCategory; i++) {
      const c = ts[i % ts.length]!(p);
      out.push({ id: `${split}-${category}-${i + 1}`, split, category, ...c });
    }
  }
  return out;
}

/** 120 prompts per category to tune on, 60 per category held out. */
export function evalCases(): { dev: EvalCase[]; heldout: EvalCase[] } {
  return { dev: expand('dev', 120, 20261201), heldout: expand('heldout', 60, 7_040_213) };
}

/**
 * The planner evaluation's sentences as people write them, in the style of NSR-1K (LayoutGPT, 2023): photo
 * captions (counting, and spatial relations between two objects) and comparison and crowd prompts, each with
 * what a correct layout must show. Written as a small grammar over word lists and expanded with a fixed seed,
 * like cases.ts, so the sets are reproducible and their expectations exact.
 *
 * The captions split mixes the shapes photo captions take: frames ("close up of", "a picture of"), relative
 * clauses, participle phrases whose object is an object of its own, passives, colour lists, supports with a
 * part ("on the back of a truck"), activities that must not become boxes ("taking a nap"), and counts.
 */
import { rng, type EvalCase } from './cases.ts';

type Noun = [string, string];

const PEOPLE: Noun[] = [
  ['man', 'men'],
  ['woman', 'women'],
  ['boy', 'boys'],
  ['girl', 'girls'],
  ['child', 'children'],
  ['skier', 'skiers'],
  ['surfer', 'surfers'],
  ['chef', 'chefs'],
  ['player', 'players'],
  ['lady', 'ladies'],
];
const ANIMALS: Noun[] = [
  ['cat', 'cats'],
  ['dog', 'dogs'],
  ['horse', 'horses'],
  ['cow', 'cows'],
  ['sheep', 'sheep'],
  ['elephant', 'elephants'],
  ['giraffe', 'giraffes'],
  ['zebra', 'zebras'],
  ['bird', 'birds'],
  ['bear', 'bears'],
  ['duck', 'ducks'],
  ['puppy', 'puppies'],
  ['kitten', 'kittens'],
];
const THINGS: Noun[] = [
  ['pizza', 'pizzas'],
  ['cake', 'cakes'],
  ['laptop', 'laptops'],
  ['bicycle', 'bicycles'],
  ['motorcycle', 'motorcycles'],
  ['car', 'cars'],
  ['truck', 'trucks'],
  ['bus', 'buses'],
  ['train', 'trains'],
  ['boat', 'boats'],
  ['kite', 'kites'],
  ['frisbee', 'frisbees'],
  ['surfboard', 'surfboards'],
  ['bench', 'benches'],
  ['chair', 'chairs'],
  ['couch', 'couches'],
  ['clock', 'clocks'],
  ['vase', 'vases'],
  ['book', 'books'],
  ['cup', 'cups'],
  ['bowl', 'bowls'],
  ['banana', 'bananas'],
  ['apple', 'apples'],
  ['sandwich', 'sandwiches'],
  ['donut', 'donuts'],
  ['teddy bear', 'teddy bears'],
  ['suitcase', 'suitcases'],
  ['television', 'televisions'],
  ['toilet', 'toilets'],
  ['sink', 'sinks'],
  ['bottle', 'bottles'],
  ['plate', 'plates'],
  ['orange', 'oranges'],
  ['skateboard', 'skateboards'],
  ['traffic light', 'traffic lights'],
  ['fire hydrant', 'fire hydrants'],
  ['umbrella', 'umbrellas'],
  ['cell phone', 'cell phones'],
];
/** Things an animal or a person lies, sits or stands on. */
const SUPPORTS: Noun[] = [
  ['bed', 'beds'],
  ['couch', 'couches'],
  ['bench', 'benches'],
  ['table', 'tables'],
  ['chair', 'chairs'],
  ['car', 'cars'],
  ['suitcase', 'suitcases'],
  ['desk', 'desks'],
  ['rug', 'rugs'],
  ['boat', 'boats'],
];
const RIDDEN: Noun[] = [
  ['horse', 'horses'],
  ['bicycle', 'bicycles'],
  ['motorcycle', 'motorcycles'],
  ['skateboard', 'skateboards'],
  ['surfboard', 'surfboards'],
  ['elephant', 'elephants'],
];
const HELD: Noun[] = [
  ['umbrella', 'umbrellas'],
  ['frisbee', 'frisbees'],
  ['kite', 'kites'],
  ['banana', 'bananas'],
  ['cell phone', 'cell phones'],
  ['teddy bear', 'teddy bears'],
  ['book', 'books'],
  ['cup', 'cups'],
  ['donut', 'donuts'],
];
const PLACES = ['a field', 'a kitchen', 'the beach', 'a city street', 'a park', 'the snow', 'a living room', 'a lake'];
const COLOURS = ['black', 'white', 'brown', 'gray', 'red', 'blue', 'orange', 'yellow', 'green', 'tan'];
/** Activities that must never become a box. */
const ACTIVITIES: [string, string][] = [
  ['taking a nap', 'nap'],
  ['having a look around', 'look'],
  ['giving a stare', 'stare'],
  ['looking at each other', 'other'],
  ['taking a selfie', 'selfie'],
  ['playing tennis', 'tennis'],
  ['having a snack', 'snack'],
];
const WORDS = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'];

interface Pick {
  one<T>(xs: T[]): T;
  two(xs: Noun[]): [Noun, Noun];
  n(min: number, max: number): number;
  coin(): boolean;
}

function picker(next: () => number): Pick {
  const one = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)]!;
  return {
    one,
    two(xs) {
      const a = one(xs);
      let b = one(xs);
      while (b[0].includes(a[0]) || a[0].includes(b[0])) b = one(xs);
      return [a, b];
    },
    n: (min, max) => min + Math.floor(next() * (max - min + 1)),
    coin: () => next() < 0.5,
  };
}

const an = (w: string) => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);
const count = (p: Pick, n: number, o: Noun) => `${p.coin() ? WORDS[n - 1] : String(n)} ${n === 1 ? o[0] : o[1]}`;

type Template = (p: Pick) => Omit<EvalCase, 'id' | 'split' | 'category'>;

/** One kind of object, counted, in a caption. */
const SINGLE: Template[] = [
  (p) => {
    const o = p.one([...ANIMALS, ...THINGS]);
    const n = p.n(1, 6);
    return {
      prompt: `${count(p, n, o)} ${p.one(['sitting', 'lined up', 'together'])} in ${p.one(PLACES)}`,
      objects: [{ name: o[0], count: n }],
    };
  },
  (p) => {
    const o = p.one(ANIMALS);
    const n = p.n(2, 5);
    return { prompt: `there are ${count(p, n, o)} in this picture`, objects: [{ name: o[0], count: n }] };
  },
  (p) => {
    const o = p.one(THINGS);
    return { prompt: `close up of ${an(o[0])} on a table`, objects: [{ name: o[0], count: 1 }] };
  },
  (p) => {
    const o = p.one(ANIMALS);
    const c = [p.one(COLOURS), p.one(COLOURS), p.one(COLOURS)];
    return {
      prompt: `a picture of a ${c[0]}, ${c[1]}, and ${c[2]} ${o[0]} ${p.one(['laying', 'sleeping', 'sitting'])} on a ${p.one(SUPPORTS)[0]}`,
      objects: [{ name: o[0], count: 1 }],
      absent: c,
    };
  },
  (p) => {
    const o = p.one(ANIMALS);
    const [act, word] = p.one(ACTIVITIES);
    return { prompt: `${an(o[0])} ${act} in ${p.one(PLACES)}`, objects: [{ name: o[0], count: 1 }], absent: [word] };
  },
  (p) => {
    const o = p.one(THINGS);
    return { prompt: `a couple of ${o[1]} that are ${p.one(COLOURS)}`, objects: [{ name: o[0], count: 2 }] };
  },
  (p) => {
    const o = p.one(ANIMALS);
    return {
      prompt: `a pair of ${o[1]} ${p.one(['standing', 'grazing', 'resting'])} in ${p.one(PLACES)}`,
      objects: [{ name: o[0], count: 2 }],
    };
  },
  (p) => {
    const o = p.one(THINGS);
    return { prompt: `an image of several ${o[1]}`, objects: [{ name: o[0], count: 3 }] };
  },
  (p) => {
    const o = p.one(PEOPLE);
    const n = p.n(2, 4);
    return {
      prompt: `${count(p, n, o)} who are ${p.one(['standing', 'posing', 'smiling'])} for a picture`,
      objects: [{ name: o[0], count: n }],
      absent: ['picture'],
    };
  },
];

/** Two kinds: a participle's object, a passive's agent, a support, a relative clause. */
const PAIRS: Template[] = [
  (p) => {
    const [s, o] = [p.one(PEOPLE), p.one(RIDDEN)];
    return {
      prompt:
        `${an(s[0])} riding ${an(o[0])} ${p.one(['down a street', 'on the beach', 'through a field', ''])}`.trim(),
      objects: [
        { name: s[0], count: 1 },
        { name: o[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [s, o] = [p.one(PEOPLE), p.one(HELD)];
    return {
      prompt: `${an(s[0])} that is holding ${an(o[0])} in ${p.one(PLACES)}`,
      objects: [
        { name: s[0], count: 1 },
        { name: o[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [a, b] = p.two(ANIMALS);
    return {
      prompt: `${an(a[0])} ${p.one(['looking', 'staring', 'barking', 'peering'])} at ${an(b[0])}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [a, b] = [p.one(ANIMALS), p.one(SUPPORTS)];
    return {
      prompt: `${an(p.one(COLOURS))} ${a[0]} ${p.one(['laying', 'lying', 'sitting', 'sleeping', 'curled up'])} on ${p.one(['a', 'the'])} ${b[0]}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      absent: ['laying', 'lying', 'sitting', 'sleeping', 'curled'],
    };
  },
  (p) => {
    const o = p.one([
      ['pizza', 'pizzas'],
      ['cake', 'cakes'],
      ['sandwich', 'sandwiches'],
    ] as Noun[]);
    const s = p.one(PEOPLE);
    return {
      prompt: `${an(o[0])} being ${p.one(['cut', 'served', 'eaten'])} by ${an(s[0])}`,
      objects: [
        { name: o[0], count: 1 },
        { name: s[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [a, part, b] = p.one([
      ['dog', 'back', 'truck'],
      ['dog', 'bed', 'truck'],
      ['man', 'back', 'motorcycle'],
      ['cat', 'top', 'car'],
      ['bird', 'edge', 'bench'],
      ['cat', 'hood', 'car'],
      ['boy', 'back', 'boat'],
      ['bird', 'roof', 'bus'],
    ] as [string, string, string][]);
    return {
      prompt: `${an(a)} ${p.one(['sitting', 'standing', 'riding'])} ${part === 'bed' ? 'in' : 'on'} the ${part} of ${an(b)}`,
      objects: [
        { name: a, count: 1 },
        { name: b, count: 1 },
      ],
      absent: [part],
    };
  },
  (p) => {
    const o = p.one([
      ['pizza', 'pizzas'],
      ['cake', 'cakes'],
      ['pie', 'pies'],
      ['turkey', 'turkeys'],
    ] as Noun[]);
    return {
      prompt: `${an(o[0])} ${p.one(['baking', 'cooking', 'sitting'])} in an oven`,
      objects: [
        { name: o[0], count: 1 },
        { name: 'oven', count: 1 },
      ],
    };
  },
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...PEOPLE]);
    const n = p.n(2, 3);
    return {
      prompt: `${count(p, n, a)} and ${an(b[0])} in ${p.one(PLACES)}`,
      objects: [
        { name: a[0], count: n },
        { name: b[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [s, o] = [p.one(PEOPLE), p.one(HELD)];
    return {
      prompt: `${an(s[0])} who is ${p.one(['carrying', 'holding'])} ${an(o[0])} next to ${an(p.one(SUPPORTS)[0])}`,
      objects: [
        { name: s[0], count: 1 },
        { name: o[0], count: 1 },
      ],
    };
  },
  (p) => {
    const [a, b] = p.two(THINGS);
    return {
      prompt: `a ${a[0]} which is ${p.one(COLOURS)} and a ${p.one(COLOURS)} ${b[0]}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
    };
  },
];

/** Two objects and a spatial relation, as captions put it. */
const SPATIAL: Template[] = [
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...THINGS]);
    const [w, rel] = p.one([
      ['to the left of', 'left'],
      ['to the right of', 'right'],
      ['above', 'above'],
      ['below', 'below'],
    ] as const);
    return {
      prompt: `a photo of ${an(a[0])} ${w} ${an(b[0])}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel, b: b[0] }],
    };
  },
  (p) => {
    const [a, b] = p.two(ANIMALS);
    const rel = p.coin() ? 'left' : 'right';
    return {
      prompt: `${an(a[0])} ${p.one(['sitting', 'standing', 'sleeping'])} on the ${rel} side of ${an(b[0])}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel, b: b[0] }],
    };
  },
  (p) => {
    const [a, b] = p.two(THINGS);
    const rel = p.coin() ? 'left' : 'right';
    return {
      prompt: `${an(a[0])} that is on the ${rel} of ${an(b[0])} in ${p.one(PLACES)}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel, b: b[0] }],
    };
  },
  (p) => {
    const [a, b] = [
      p.one([
        ['bird', 'birds'],
        ['kite', 'kites'],
        ['clock', 'clocks'],
        ['traffic light', 'traffic lights'],
      ] as Noun[]),
      p.one([...ANIMALS.slice(0, 8), ...PEOPLE]),
    ];
    return {
      prompt:
        `${an(a[0])} ${p.one(['flying', 'hanging', 'high up'])} above ${an(b[0])} ${p.one(['', 'in a park', 'on a street'])}`.trim(),
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel: 'above', b: b[0] }],
    };
  },
  (p) => {
    const [a, b] = p.two(PEOPLE);
    const rel = p.coin() ? 'left' : 'right';
    return {
      prompt: `${an(a[0])} ${p.one(['talking', 'standing', 'walking'])} to the ${rel} of ${an(b[0])}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel, b: b[0] }],
    };
  },
  (p) => {
    const [a, b] = [p.one(ANIMALS.slice(0, 3)), p.one(SUPPORTS.slice(0, 5))];
    return {
      prompt: `${an(a[0])} ${p.one(['hiding', 'sleeping', 'resting'])} under ${an(b[0])}`,
      objects: [
        { name: a[0], count: 1 },
        { name: b[0], count: 1 },
      ],
      relations: [{ a: a[0], rel: 'below', b: b[0] }],
    };
  },
];

/** Comparisons: "more X than Y", "fewer", "as many as", "twice as many", with and without a count. */
const COMPARISONS: Template[] = [
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...THINGS]);
    return {
      prompt: `there are more ${a[1]} than ${b[1]} in the image`,
      objects: [],
      compare: { a: a[0], rel: 'more', b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...THINGS]);
    return {
      prompt: `${p.one(['there are ', 'a photo with ', ''])}fewer ${a[1]} than ${b[1]}`,
      objects: [],
      compare: { a: a[0], rel: 'fewer', b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two(THINGS);
    return {
      prompt: `as many ${a[1]} as ${b[1]} on a table`,
      objects: [],
      compare: { a: a[0], rel: 'equal', b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two(ANIMALS);
    return {
      prompt: `twice as many ${a[1]} as ${b[1]} in ${p.one(PLACES)}`,
      objects: [],
      compare: { a: a[0], rel: 'times', k: 2, b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...THINGS]);
    const n = p.n(1, 3);
    return {
      prompt: `a picture with ${n === 1 ? 'one' : WORDS[n - 1]} more ${a[1]} than ${b[1]}`,
      objects: [],
      compare: { a: a[0], rel: 'more', b: b[0], diff: n },
    };
  },
  (p) => {
    const [a, b] = p.two(ANIMALS);
    return { prompt: `a few ${a[1]} and more ${b[1]}`, objects: [], compare: { a: b[0], rel: 'more', b: a[0] } };
  },
  (p) => {
    const [a, b] = p.two(THINGS);
    return { prompt: `several ${a[1]} but fewer ${b[1]}`, objects: [], compare: { a: b[0], rel: 'fewer', b: a[0] } };
  },
  (p) => {
    const [a, b] = p.two([...ANIMALS, ...THINGS]);
    const n = p.n(2, 3);
    return {
      prompt: `more ${a[1]} than the ${WORDS[n - 1]} ${b[1]}`,
      objects: [{ name: b[0], count: n }],
      compare: { a: a[0], rel: 'more', b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two(PEOPLE);
    return {
      prompt: `the same number of ${a[1]} and ${b[1]} at a party`,
      objects: [],
      compare: { a: a[0], rel: 'equal', b: b[0] },
    };
  },
  (p) => {
    const [a, b] = p.two(ANIMALS);
    return {
      prompt: `${a[1]} outnumber ${b[1]} in this photo`,
      objects: [],
      compare: { a: a[0], rel: 'more', b: b[0] },
    };
  },
];

/** Crowds: above the region limit, or words like "a thousand". */
const CROWDS: Template[] = [
  (p) => {
    const o = p.one([
      ['bird', 'birds'],
      ['sheep', 'sheep'],
      ['cow', 'cows'],
      ['person', 'people'],
      ['star', 'stars'],
      ['balloon', 'balloons'],
      ['car', 'cars'],
    ] as Noun[]);
    const n = p.one([
      'a thousand',
      'a hundred',
      'three thousand',
      'a million',
      '100',
      '250',
      'twenty',
      '12',
      'nine',
      'fifteen',
    ]);
    return {
      prompt: `${n} ${o[1]} ${p.one(['in the sky', 'in a field', 'on a street', 'at night', ''])}`.trim(),
      objects: [{ name: o[0], count: 1 }],
      crowd: [o[0]],
    };
  },
  (p) => {
    const [a, b] = [
      p.one([
        ['bird', 'birds'],
        ['fish', 'fish'],
        ['bee', 'bees'],
      ] as Noun[]),
      p.one(PEOPLE),
    ];
    return {
      prompt: `${an(b[0])} watching ${p.one(['hundreds of', 'a thousand', 'countless', '40'])} ${a[1]}`,
      objects: [
        { name: b[0], count: 1 },
        { name: a[0], count: 1 },
      ],
      crowd: [a[0]],
    };
  },
];

function expand(templates: Template[], n: number, next: () => number, category: EvalCase['category']): EvalCase[] {
  const p = picker(next);
  return Array.from({ length: n }, (_, i) => ({
    id: `${category}-${i + 1}`,
    split: 'captions' as const,
    category,
    ...templates[i % templates.length]!(p),
  }));
}

/** 330 captions (single kind, two kinds, spatial) and 160 comparison and crowd sentences. */
export function captionCases(): { captions: EvalCase[]; comparisons: EvalCase[] } {
  const next = rng(20_261_203);
  return {
    captions: [
      ...expand(SINGLE, 120, next, 'single'),
      ...expand(PAIRS, 120, next, 'two-kinds'),
      ...expand(SPATIAL, 90, next, 'caption-spatial'),
    ],
    comparisons: [...expand(COMPARISONS, 120, next, 'comparison'), ...expand(CROWDS, 40, next, 'crowd')].map((c) => ({
      ...c,
      split: 'comparisons' as const,
    })),
  };
}

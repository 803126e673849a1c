/**
 * RAG-SPEC.md §10.4: hard-binding boxes and soft-refinement cells of every official example, as
 * [rowStart, rowEnd, colStart, colEnd] token intervals (half-open). Copied from the spec table.
 */
export type Rect = [number, number, number, number];

export const OFFICIAL_MAPS: {
  file: 'RAG_Gallery.json' | 'LoRA_Gallery.json' | 'Repainting_Gallery.json';
  idx: number;
  boxes: Rect[];
  cells: Rect[];
}[] = [
  {
    file: 'RAG_Gallery.json',
    idx: 0,
    boxes: [
      [4, 42, 0, 30],
      [4, 42, 33, 62],
      [4, 42, 65, 94],
    ],
    cells: [
      [0, 48, 0, 32],
      [0, 48, 32, 64],
      [0, 48, 64, 96],
    ],
  },
  {
    file: 'RAG_Gallery.json',
    idx: 1,
    boxes: [
      [9, 37, 1, 27],
      [9, 37, 33, 59],
      [9, 37, 65, 91],
    ],
    cells: [
      [0, 48, 0, 31],
      [0, 48, 31, 64],
      [0, 48, 64, 96],
    ],
  },
  {
    file: 'RAG_Gallery.json',
    idx: 2,
    boxes: [
      [0, 31, 0, 12],
      [0, 31, 16, 31],
      [0, 31, 32, 47],
      [0, 31, 48, 63],
      [32, 63, 0, 15],
      [32, 63, 16, 31],
      [32, 63, 32, 47],
      [32, 63, 48, 63],
    ],
    cells: [
      [0, 32, 0, 16],
      [0, 32, 16, 32],
      [0, 32, 32, 48],
      [0, 32, 48, 64],
      [32, 64, 0, 16],
      [32, 64, 16, 32],
      [32, 64, 32, 48],
      [32, 64, 48, 64],
    ],
  },
  {
    file: 'RAG_Gallery.json',
    idx: 3,
    boxes: [
      [35, 60, 6, 57],
      [3, 31, 6, 57],
    ],
    cells: [
      [0, 32, 0, 64],
      [32, 64, 0, 64],
    ],
  },
  {
    file: 'RAG_Gallery.json',
    idx: 4,
    boxes: [
      [12, 50, 6, 38],
      [6, 57, 19, 57],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'RAG_Gallery.json',
    idx: 5,
    boxes: [
      [6, 57, 1, 14],
      [6, 57, 17, 30],
      [6, 57, 33, 46],
      [6, 57, 49, 62],
    ],
    cells: [
      [0, 64, 0, 16],
      [0, 64, 16, 32],
      [0, 64, 32, 48],
      [0, 64, 48, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 0,
    boxes: [
      [9, 53, 0, 14],
      [9, 53, 16, 30],
      [9, 53, 32, 46],
      [9, 53, 48, 62],
    ],
    cells: [
      [0, 64, 0, 16],
      [0, 64, 16, 32],
      [0, 64, 32, 48],
      [0, 64, 48, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 1,
    boxes: [
      [6, 31, 6, 31],
      [6, 31, 38, 63],
      [38, 63, 6, 31],
      [38, 63, 38, 63],
    ],
    cells: [
      [0, 32, 0, 32],
      [0, 32, 32, 64],
      [32, 64, 0, 32],
      [32, 64, 32, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 2,
    boxes: [
      [6, 57, 3, 28],
      [6, 57, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 3,
    boxes: [
      [6, 57, 1, 19],
      [6, 57, 22, 41],
      [0, 64, 43, 61],
    ],
    cells: [
      [0, 64, 0, 21],
      [0, 64, 21, 42],
      [0, 64, 42, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 4,
    boxes: [
      [3, 28, 3, 28],
      [3, 28, 35, 60],
      [35, 60, 0, 19],
      [35, 60, 21, 40],
      [35, 60, 42, 61],
    ],
    cells: [
      [0, 32, 0, 64],
      [32, 64, 0, 64],
    ],
  },
  {
    file: 'LoRA_Gallery.json',
    idx: 5,
    boxes: [
      [6, 57, 3, 28],
      [6, 57, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 0,
    boxes: [
      [6, 57, 3, 35],
      [16, 48, 41, 60],
    ],
    cells: [
      [0, 64, 0, 38],
      [0, 64, 38, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 1,
    boxes: [
      [12, 50, 0, 19],
      [12, 50, 21, 40],
      [12, 50, 42, 61],
    ],
    cells: [
      [0, 64, 0, 21],
      [0, 64, 21, 42],
      [0, 64, 42, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 2,
    boxes: [],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 3,
    boxes: [],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 4,
    boxes: [],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 5,
    boxes: [
      [6, 57, 3, 28],
      [6, 57, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    file: 'Repainting_Gallery.json',
    idx: 6,
    boxes: [
      [12, 50, 0, 12],
      [12, 50, 16, 28],
      [12, 50, 32, 44],
      [12, 50, 48, 60],
    ],
    cells: [
      [0, 64, 0, 16],
      [0, 64, 16, 32],
      [0, 64, 32, 48],
      [0, 64, 48, 64],
    ],
  },
];

/** The Redux gallery is not among the fixtures; its boxes (RAG-SPEC.md §5.3) and maps (§10.4), 1024². */
export const REDUX_MAPS: {
  idx: number;
  ratio: string;
  m: number[];
  n: number[];
  ms: number[];
  ns: number[];
  boxes: Rect[];
  cells: Rect[];
}[] = [
  {
    idx: 0,
    ratio: '0.5,0.5',
    m: [0.05, 0.55],
    n: [0.0, 0.0],
    ms: [0.4, 0.4],
    ns: [1, 1],
    boxes: [
      [0, 64, 3, 28],
      [0, 64, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    idx: 1,
    ratio: '0.5,0.5',
    m: [0.05, 0.55],
    n: [0.2, 0.2],
    ms: [0.4, 0.4],
    ns: [0.4, 0.4],
    boxes: [
      [12, 37, 3, 28],
      [12, 37, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    idx: 2,
    ratio: '1,1,1,1',
    m: [0.0, 0.25, 0.5, 0.75],
    n: [0.2, 0.2, 0.2, 0.2],
    ms: [0.2, 0.2, 0.2, 0.2],
    ns: [0.6, 0.6, 0.6, 0.6],
    boxes: [
      [12, 50, 0, 12],
      [12, 50, 16, 28],
      [12, 50, 32, 44],
      [12, 50, 48, 60],
    ],
    cells: [
      [0, 64, 0, 16],
      [0, 64, 16, 32],
      [0, 64, 32, 48],
      [0, 64, 48, 64],
    ],
  },
  {
    idx: 4,
    ratio: '0.5,0.5',
    m: [0.05, 0.55],
    n: [0.2, 0.2],
    ms: [0.4, 0.4],
    ns: [0.4, 0.4],
    boxes: [
      [12, 37, 3, 28],
      [12, 37, 35, 60],
    ],
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
];

/** RAG-SPEC.md §10.5: split-ratio parser cases at 1024² (64×64 tokens). */
export const SPLIT_CASES: { ratio: string; cells: Rect[] }[] = [
  {
    ratio: '0.5,0.5',
    cells: [
      [0, 64, 0, 32],
      [0, 64, 32, 64],
    ],
  },
  {
    ratio: '0.5; 0.5',
    cells: [
      [0, 32, 0, 64],
      [32, 64, 0, 64],
    ],
  },
  {
    ratio: '1;1;1',
    cells: [
      [0, 21, 0, 64],
      [21, 42, 0, 64],
      [42, 64, 0, 64],
    ],
  },
  {
    ratio: '1,1,1',
    cells: [
      [0, 64, 0, 21],
      [0, 64, 21, 42],
      [0, 64, 42, 64],
    ],
  },
  {
    ratio: '0.6,0.3,0.1',
    cells: [
      [0, 64, 0, 38],
      [0, 64, 38, 57],
      [0, 64, 57, 64],
    ],
  },
  {
    ratio: '0.1,0.2,0.3,0.4',
    cells: [
      [0, 64, 0, 6],
      [0, 64, 6, 19],
      [0, 64, 19, 38],
      [0, 64, 38, 64],
    ],
  },
  {
    ratio: '0.2,0.2,0.2,0.2,0.2',
    cells: [
      [0, 64, 0, 12],
      [0, 64, 12, 25],
      [0, 64, 25, 38],
      [0, 64, 38, 51],
      [0, 64, 51, 64],
    ],
  },
  {
    ratio: '1,2,1,1;2,2,1',
    cells: [
      [0, 21, 0, 32],
      [0, 21, 32, 48],
      [0, 21, 48, 64],
      [21, 64, 0, 42],
      [21, 64, 42, 64],
    ],
  },
  {
    ratio: '0.5,0.5,0.5;0.5,0.5,0.5',
    cells: [
      [0, 32, 0, 32],
      [0, 32, 32, 64],
      [32, 64, 0, 32],
      [32, 64, 32, 64],
    ],
  },
  {
    ratio: '1,1,1,1,1;1,1,1,1,1',
    cells: [
      [0, 32, 0, 16],
      [0, 32, 16, 32],
      [0, 32, 32, 48],
      [0, 32, 48, 64],
      [32, 64, 0, 16],
      [32, 64, 16, 32],
      [32, 64, 32, 48],
      [32, 64, 48, 64],
    ],
  },
];

/** RAG-SPEC.md §10.6: the official masks at 1024². */
export const MASK_CASES: {
  file: string;
  black: number;
  dilated: number;
  tokens: number;
  n0: number;
  bh: number;
  m0: number;
  bw: number;
}[] = [
  { file: 'mask_0.png', black: 55025, dilated: 64000, tokens: 246, n0: 41, bh: 21, m0: 39, bw: 17 },
  { file: 'mask_1.png', black: 176925, dilated: 199540, tokens: 778, n0: 14, bh: 43, m0: 36, bw: 28 },
  { file: 'mask_2.png', black: 342299, dilated: 368817, tokens: 1435, n0: 11, bh: 46, m0: 12, bw: 49 },
  { file: 'mask_3.png', black: 79630, dilated: 88959, tokens: 346, n0: 29, bh: 21, m0: 8, bw: 21 },
  { file: 'mask_4.png', black: 296404, dilated: 313681, tokens: 1224, n0: 16, bh: 48, m0: 14, bw: 38 },
  { file: 'mask_5.png', black: 316496, dilated: 335872, tokens: 1311, n0: 7, bh: 57, m0: 30, bw: 30 },
  { file: 'mask_6.png', black: 45045, dilated: 54573, tokens: 209, n0: 27, bh: 18, m0: 34, bw: 15 },
];

export const MASK6_CROP = [
  '###########....',
  '###########....',
  '###########....',
  '###########....',
  '###########....',
  '###########....',
  '#############..',
  '##############.',
  '###############',
  '###########.###',
  '###########.###',
  '##############.',
  '##############.',
  '############...',
  '###########....',
  '.#########.....',
  '..########.....',
  '...#####.......',
];

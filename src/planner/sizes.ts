/**
 * Size priors: how big a thing usually is, as it is usually seen (width × height in centimetres, side on).
 * The offline layout scales every box of a picture from these, so a ball comes out smaller than a cat and a
 * sofa wider than tall. Only ratios matter; the numbers are rough real-world sizes, not measurements.
 */

const TABLE = `
person 50x170 man 50x178 woman 45x168 girl 40x140 boy 40x140 child 38x120 kid 38x120 lady 45x168 gentleman 50x178
baby 45x40 toddler 35x80 king 55x180 queen 50x170 knight 60x185 wizard 55x180 witch 50x170 astronaut 70x185
soldier 55x180 robot 60x150 chef 50x175 doctor 50x175 dancer 60x170 ballerina 60x165 princess 50x165 prince 50x178
warrior 60x182 farmer 50x175 pirate 55x178 ninja 55x175 clown 55x175 cowboy 55x180 student 45x170 teacher 50x172
player 55x180 musician 55x175 scientist 50x175 police 55x180 policeman 55x180 firefighter 60x182 nurse 45x168
old 50x170 elf 40x120 dwarf 50x120 fairy 25x30 angel 70x170 ghost 60x160 zombie 55x175 vampire 55x180 monk 55x175
mermaid 160x70 snowman 70x150 scarecrow 90x170 mannequin 45x180 statue 70x200
cat 45x35 kitten 25x20 dog 80x60 puppy 40x30 corgi 70x45 horse 220x170 pony 160x120 cow 220x150 bull 250x160
calf 120x90 sheep 130x90 lamb 70x55 goat 110x80 pig 130x80 piglet 45x30 rabbit 35x30 bunny 30x25 hamster 12x8
mouse 10x5 rat 20x8 squirrel 30x25 fox 90x50 wolf 130x80 bear 200x150 panda 150x110 koala 60x70 lion 220x120
tiger 250x110 leopard 200x90 cheetah 200x90 elephant 450x300 giraffe 250x500 zebra 230x140 rhino 380x170
hippo 400x150 monkey 50x60 gorilla 110x170 deer 170x130 moose 280x210 camel 300x210 kangaroo 100x150
raccoon 70x35 hedgehog 25x15 owl 35x45 eagle 80x60 parrot 30x40 penguin 40x70 duck 40x35 duckling 15x12
chicken 40x40 chick 12x12 hen 40x40 rooster 45x55 goose 70x60 swan 120x90 bird 25x20 pigeon 30x25 crow 40x35
flamingo 70x140 peacock 120x110 butterfly 10x8 bee 3x2 ladybug 2x1.5 spider 8x4 snail 8x5 frog 12x8 toad 12x8
turtle 45x20 tortoise 50x25 lizard 40x10 snake 150x20 crocodile 400x60 alligator 380x60 fish 40x20 goldfish 12x8
shark 400x150 whale 1500x400 dolphin 250x90 octopus 90x60 crab 25x12 jellyfish 40x60 seal 170x60 otter 100x35
dinosaur 900x450 dragon 900x500 unicorn 220x180 teddy 35x45 bat 30x15 worm 10x1 ant 1x0.5 caterpillar 5x1
car 450x150 taxi 450x150 bus 1200x320 truck 800x350 van 500x200 jeep 420x180 tractor 400x280 motorcycle 210x110
bicycle 175x100 bike 175x100 scooter 120x110 skateboard 80x12 train 2500x400 tram 2000x350 airplane 3500x1100
plane 3500x1100 helicopter 1200x400 rocket 300x1500 spaceship 1500x600 boat 500x200 ship 5000x1500 sailboat 600x900
canoe 500x60 kayak 450x50 yacht 1500x600 submarine 3000x800 tank 700x250 carriage 300x230 wagon 300x150
sofa 200x90 couch 200x90 armchair 90x95 chair 50x90 stool 40x60 bench 160x85 table 150x75 desk 140x75 bed 200x80
crib 130x100 shelf 120x180 bookshelf 100x190 bookcase 100x190 cabinet 100x120 cupboard 100x190 dresser 120x100
wardrobe 120x200 drawer 60x30 piano 150x130 fireplace 150x120 door 90x210 window 120x140 mirror 60x90
painting 80x60 poster 50x70 frame 40x30 rug 200x10 carpet 250x10 pillow 50x35 cushion 45x40 blanket 150x20
lamp 35x60 candle 6x15 lantern 20x35 clock 35x35 vase 20x35 plant 50x80 flower 10x30 rose 8x30 tulip 8x30
sunflower 30x160 cactus 40x100 tree 400x600 palm 400x800 bush 150x100 pumpkin 40x35 mushroom 8x10 umbrella 100x90
tent 300x200 house 1000x700 cottage 800x600 cabin 700x500 castle 3000x2500 tower 500x3000 lighthouse 600x2500
windmill 800x1500 barn 1200x800 church 1500x2000 skyscraper 3000x20000 building 2000x3000 bridge 5000x800
fountain 300x250 well 120x150 fence 300x120 gate 200x200 mailbox 40x120 hydrant 35x75 streetlight 40x500
bottle 8x28 cup 9x10 mug 12x10 teacup 12x8 glass 8x14 wineglass 8x20 jar 12x18 can 7x12 bowl 18x9 plate 26x3
pot 30x25 kettle 25x25 teapot 28x20 pan 45x8 spoon 4x18 fork 3x19 knife 3x22 chopsticks 2x24 tray 45x4
apple 8x8 orange 8x8 lemon 7x6 lime 5x5 banana 20x6 pear 8x11 peach 8x8 plum 5x5 cherry 2.5x3 strawberry 3x4
grape 2x2 watermelon 35x25 melon 20x18 pineapple 15x30 coconut 14x14 avocado 8x11 tomato 7x6 potato 9x6 carrot 3x18
onion 8x8 egg 4.5x6 bread 30x12 loaf 30x12 baguette 60x6 croissant 15x7 cake 25x15 cupcake 7x8 cookie 7x1.5
donut 9x4 doughnut 9x4 muffin 8x8 pie 25x6 pizza 35x3 burger 12x9 hamburger 12x9 sandwich 15x8 taco 15x8
sushi 5x3 ice 8x16 popsicle 6x15 cheese 15x8 steak 20x4 candy 3x2 chocolate 15x1 lollipop 6x20
ball 25x25 football 22x22 basketball 24x24 baseball 7.5x7.5 balloon 30x38 kite 90x100 toy 20x20 doll 20x40 dice 2x2
die 2x2 block 5x5 book 22x28 notebook 20x26 newspaper 40x30 letter 22x28 pen 1.5x14 pencil 1x18 crayon 1x9
laptop 35x25 computer 50x45 monitor 60x45 keyboard 45x3 phone 7x15 smartphone 7x15 tablet 25x18 camera 13x9
television 110x65 tv 110x65 radio 30x18 guitar 40x100 violin 22x60 drum 50x40 trumpet 50x15 microphone 5x20
headphones 18x20 backpack 32x45 bag 35x30 handbag 30x22 suitcase 45x65 basket 40x30 box 40x35 crate 50x40
barrel 60x90 bucket 30x30 watch 4x4 ring 2x2 key 2x6 coin 2.5x2.5 wallet 11x9 hat 35x15 cap 25x12 shoe 28x12
boot 28x30 sock 10x25 glove 12x22 scarf 20x150 tie 9x50 crown 20x15 helmet 25x25 mask 18x20 glasses 14x5
sunglasses 14x5 shirt 55x75 dress 50x120 jacket 60x75 coat 60x100 sword 8x100 shield 60x80 wand 2x35 flag 90x60
sign 60x45 bell 20x25 trophy 20x35 medal 7x9 gift 30x25 present 30x25 shell 10x8 stone 20x15 rock 80x60
pebble 3x2 log 150x35 branch 150x20 leaf 8x12 acorn 2x3 feather 5x25 bone 25x5 snowflake 1x1 star 100x100
moon 200x200 sun 200x200 planet 300x300 cloud 400x200 rainbow 1000x500 volcano 4000x2000 mountain 5000x2500
pyramid 5000x3000 snowboard 150x25 surfboard 200x50 skis 170x10 sled 100x40 wheel 70x70 tire 70x70 ladder 60x250
oven 60x60 microwave 50x30 refrigerator 80x180 fridge 80x180 stove 76x90 sink 60x20 toilet 40x75 bathtub 170x60
tub 170x60 frisbee 25x3 racket 27x68 racquet 27x68 remote 5x18 toothbrush 2x19 scissors 8x20 broccoli 15x15
skier 50x170 surfer 50x170 skateboarder 50x170 snowboarder 50x170 rider 50x170 batter 55x180 catcher 60x120
pitcher 55x180 umpire 55x175 vendor 50x170 tourist 50x170 passenger 50x170 driver 50x170 waiter 50x175 cook 50x175
officer 55x180 worker 55x178 cart 100x100 stroller 60x100 trailer 600x300 pickup 550x180 jet 3500x1100
airliner 6000x1800 blender 18x40 grill 100x100 cage 60x60 counter 200x90 dishwasher 60x85 bin 40x70
trashcan 40x70 meter 30x150 
paddle 20x60 net 300x100 board 60x40 tablecloth 150x5 napkin 30x30 
light 30x60 slice 12x3 towel 50x90 curtain 150x220 jockey 50x160 motorbike 210x110 moped 170x110
paintbrush 2x25 easel 80x170 canvas 60x80 telescope 100x120 globe 30x40 microscope 25x40
`;

export interface SizePrior {
  /** Usual width and height in centimetres, side on. */
  w: number;
  h: number;
}

const PRIORS: ReadonlyMap<string, SizePrior> = new Map(
  [...TABLE.matchAll(/([a-z-]+)\s+([\d.]+)x([\d.]+)/g)].map(
    (m) => [m[1]!, { w: Number(m[2]), h: Number(m[3]) }] as const,
  ),
);

/** Nouns that name a kind of person: they take a person's size when the table does not know the word. */
const PERSON_SUFFIX = /(man|woman|men|er|ist|or|ess)$/;

/** The prior for a head noun (singular), or undefined for words the table does not know. */
export function knownSize(head: string): SizePrior | undefined {
  return PRIORS.get(head) ?? PRIORS.get(head.replace(/-/g, ' ').split(' ').pop() ?? head);
}

/** Boxes are never flatter or thinner than 4:1: a rug seen in perspective still needs a box it can fill. */
const MAX_ASPECT = 4;

/** The prior for any head noun: the table's, a person's for "-er/-ist" people words, else a medium thing. */
export function sizeOf(head: string): SizePrior {
  const known = knownSize(head);
  if (known) return { w: Math.max(known.w, known.h / MAX_ASPECT), h: Math.max(known.h, known.w / MAX_ASPECT) };
  if (PERSON_SUFFIX.test(head) && head.length > 4) return { w: 50, h: 172 };
  return { w: 60, h: 60 };
}

/** One number for "how big": the geometric mean of width and height. */
export function magnitude(s: SizePrior): number {
  return Math.sqrt(s.w * s.h);
}

/** Every noun the table knows (for tests that draw random objects). */
export function knownObjects(): string[] {
  return [...PRIORS.keys()];
}

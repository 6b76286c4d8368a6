// The built-in corpus (`--dataset_name builtin:stories`, the default): short children's stories in the style of
// TinyStories, the tutorial's default dataset, generated here so that training works offline on a fresh clone.
//
// Every story follows one plot (a hero finds something, a problem, a failed attempt, a helper or an idea, an
// ending with a lesson) told with interchangeable phrasings and slots (names, animals, places, objects, feelings).
// The fixed skeleton and the recurring names give a small model plenty to learn (its loss falls well below the
// byte unigram entropy); the choices give enough variety that no two stories are the same.
//
// Deterministic: a seeded xorshift32 generator of our own, so every machine builds the same bytes.

/** Stories in the default corpus: about 2.5 MB of text, enough for a default run of 262,144 tokens at seq 128. */
const DEFAULT_NUM_STORIES = 3000;
const SEED = 0x5eed1e55;

/** Marsaglia's xorshift32: tiny, fast, and the same sequence on every platform. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1; // the all-zero state would stay zero forever
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

interface Hero {
  name: string;
  he: string;
  his: string;
  him: string;
  kind: string;
}

/** What a story is about: the hero, a friend who helps, where they live, the thing the plot turns on. */
interface Cast {
  hero: Hero;
  friend: { name: string; kind: string; can: string };
  /** The problem: the hero will not share the thing, or it gets stuck where only the friend can reach it. */
  shares: boolean;
  stuck: (typeof STUCK)[number];
  parent: string;
  home: string;
  place: string;
  color: string;
  thing: string;
  good: string;
  bad: string;
}

const GIRLS = ["Lily", "Mia", "Sue", "Anna", "Lucy", "Emma", "Zoe", "Kitty", "Amy", "Rose", "Ella", "Daisy"];
const BOYS = ["Tom", "Ben", "Max", "Sam", "Tim", "Jack", "Leo", "Billy", "Joe", "Finn", "Bob", "Timmy"];
const ANIMALS = ["bunny", "puppy", "kitten", "bear", "duck", "fox", "mouse", "frog", "pig", "lamb", "owl"];
const FRIEND_NAMES = ["Pip", "Coco", "Buddy", "Sunny", "Bella", "Rex", "Lulu", "Ollie", "Dot", "Spot"];
const PARENTS = ["mom", "dad", "grandma", "grandpa"];
const HOMES = [
  "in a small house near the woods",
  "in a big red house on a hill",
  "in a cozy burrow under an old tree",
  "in a little town by the sea",
  "on a big farm",
  "in a yellow house next to the park",
];
const PLACES = [
  "the park",
  "the garden",
  "the forest",
  "the beach",
  "the meadow",
  "the playground",
  "the field",
];
const COLORS = ["red", "blue", "shiny", "yellow", "green", "pink", "purple", "golden", "little", "big"];
const THINGS = ["ball", "kite", "hat", "balloon", "toy car", "doll", "boat", "drum", "book", "spoon", "box"];
const GOOD = ["happy", "glad", "excited", "proud", "joyful"];
const BAD = ["sad", "worried", "upset", "scared", "grumpy"];
// the lesson fits the plot: being helped, or learning to share
const HELP_LESSONS = ["friends help each other", "it is good to ask for help", "you should never give up"];
const SHARE_LESSONS = [
  "sharing makes everyone happy",
  "being kind is the best thing of all",
  "it is fun to play together",
];
const DAYS = ["One day", "One sunny day", "One morning", "One afternoon", "Later that day", "One windy day"];
// Where the thing ends up, why the hero cannot get it back, and the helpers who can (and how).
const STUCK = [
  {
    to: "up into a tall tree",
    at: "stuck in the tall tree",
    why: "the tree was too tall",
    helpers: [
      { kind: "bird", can: "flew up to the top of the tree" },
      { kind: "squirrel", can: "climbed up the tree very fast" },
      { kind: "monkey", can: "swung from branch to branch" },
    ],
  },
  {
    to: "into the deep pond",
    at: "at the bottom of the pond",
    why: "the water was too deep",
    helpers: [
      { kind: "fish", can: "swam down to the bottom" },
      { kind: "frog", can: "jumped into the water with a splash" },
      { kind: "duck", can: "dived under the water" },
    ],
  },
  {
    to: "onto the high roof",
    at: "on the roof",
    why: "the roof was too high",
    helpers: [
      { kind: "giraffe", can: "reached up with a long, long neck" },
      { kind: "bird", can: "flew up onto the roof" },
    ],
  },
  {
    to: "under a big rock",
    at: "under the big rock",
    why: "the rock was too heavy",
    helpers: [
      { kind: "elephant", can: "pushed the rock away with a strong trunk" },
      { kind: "bear", can: "lifted the rock with two big paws" },
    ],
  },
  {
    to: "into a dark hole",
    at: "down in the dark hole",
    why: "the hole was too dark and deep",
    helpers: [
      { kind: "dog", can: "dug and dug with strong paws" },
      { kind: "mole", can: "crawled down into the hole" },
    ],
  },
];

const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
const an = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

function cast(rng: Rng): Cast {
  const girl = rng.int(2) === 0;
  const animal = rng.int(3) !== 0;
  const stuck = rng.pick(STUCK);
  return {
    hero: {
      name: rng.pick(girl ? GIRLS : BOYS),
      he: girl ? "she" : "he",
      his: girl ? "her" : "his",
      him: girl ? "her" : "him",
      kind: animal ? rng.pick(ANIMALS) : girl ? "girl" : "boy",
    },
    friend: { name: rng.pick(FRIEND_NAMES), ...rng.pick(stuck.helpers) },
    shares: rng.int(4) === 0,
    stuck,
    parent: rng.pick(PARENTS),
    home: rng.pick(HOMES),
    place: rng.pick(PLACES),
    color: rng.pick(COLORS),
    thing: rng.pick(THINGS),
    good: rng.pick(GOOD),
    bad: rng.pick(BAD),
  };
}

function opening(rng: Rng, c: Cast): string {
  const { hero: h } = c;
  const first = rng.pick([
    `Once upon a time, there was a little ${h.kind} named ${h.name}.`,
    `There once was ${an(h.kind)} called ${h.name}.`,
    `${h.name} was a little ${h.kind} who lived ${c.home}.`,
    `Once upon a time, in a land far away, lived ${an(h.kind)} named ${h.name}.`,
  ]);
  const second = first.includes(c.home)
    ? `${cap(h.he)} lived there with ${h.his} ${c.parent}.`
    : `${cap(h.he)} lived ${c.home} with ${h.his} ${c.parent}.`;
  const third = rng.pick([
    `${h.name} loved to play in ${c.place} every day.`,
    `${cap(h.his)} favorite place in the world was ${c.place}.`,
    `Every day, ${h.name} went to ${c.place} to play.`,
  ]);
  return `${first} ${second} ${third}`;
}

function finding(rng: Rng, c: Cast): string {
  const { hero: h } = c;
  const found = `${rng.pick(DAYS)}, ${h.name} found ${an(c.color)} ${c.thing} in ${c.place}.`;
  const said = rng.pick([
    `"Wow, look at this ${c.thing}!" ${h.he} said. "It is so ${c.color}!"`,
    `${h.name} was very ${c.good}. "This is the best ${c.thing} ever!" ${h.he} shouted.`,
    `${cap(h.he)} picked it up and smiled. "I will keep this ${c.thing} forever," ${h.he} said.`,
  ]);
  const play = rng.pick([
    `${h.name} played with the ${c.thing} all morning.`,
    `${cap(h.he)} showed the ${c.thing} to ${h.his} ${c.parent}, and ${h.his} ${c.parent} smiled.`,
    `${h.name} held the ${c.thing} close and ran around and around.`,
  ]);
  return `${found} ${said} ${play}`;
}

/** A problem, a failed attempt of the hero's own, and how it is solved: with the friend's gift or by sharing. */
function trouble(rng: Rng, c: Cast): string {
  const { hero: h, friend: f } = c;
  if (c.shares) {
    return (
      `Then ${f.name} the ${f.kind} came by. "Can I play with your ${c.thing}?" ${f.name} asked. ` +
      `"No, it is mine!" said ${h.name}, and ${h.he} held it tight. ${f.name} felt ${c.bad} and walked away. ` +
      `Soon ${h.name} felt ${c.bad} too. Playing alone was not fun at all. ` +
      `${cap(h.he)} ran after ${f.name} and said, "I am sorry. Let's play with the ${c.thing} together." ` +
      `${f.name} smiled, and they took turns all afternoon.`
    );
  }
  const { stuck } = c;
  const how = rng.pick([
    "a strong wind came and blew",
    "a big dog ran by and pushed",
    "a naughty goat kicked",
  ]);
  const attempt = rng.pick([
    `${h.name} tried to jump, but ${stuck.why}.`,
    `${h.name} tried and tried, but ${stuck.why}.`,
    `${cap(h.he)} stretched as far as ${h.he} could, but ${stuck.why}.`,
  ]);
  const ask = rng.pick([
    `"Why are you so ${c.bad}, ${h.name}?" asked ${f.name}.`,
    `"What is wrong, ${h.name}?" asked ${f.name}.`,
  ]);
  return (
    `But then ${how} the ${c.thing} ${stuck.to}. ${h.name} felt very ${c.bad}. ${attempt} ` +
    `${cap(h.he)} began to cry. Just then, ${f.name} the ${f.kind} saw ${h.him}. ${ask} ` +
    `"My ${c.thing} is ${stuck.at}," said ${h.name}. "Don't worry, I will help you!" said ${f.name}. ` +
    `${f.name} ${f.can} and got the ${c.thing} back. ${h.name} was so ${c.good}.`
  );
}

function ending(rng: Rng, c: Cast): string {
  const { hero: h, friend: f } = c;
  const thanks = rng.pick([
    `"Thank you, ${f.name}!" said ${h.name}, and ${h.he} gave ${f.name} a big hug.`,
    `${h.name} and ${f.name} laughed and played until the sun went down.`,
    `That night, ${h.name} told ${h.his} ${c.parent} all about ${h.his} new friend.`,
  ]);
  const lesson = rng.pick(c.shares ? SHARE_LESSONS : HELP_LESSONS);
  const moral = rng.pick([
    `${h.name} learned that ${lesson}.`,
    `From that day on, ${h.name} and ${f.name} were best friends, and ${h.name} always knew that ${lesson}.`,
    `${cap(h.his)} ${c.parent} said, "You see, ${h.name}, ${lesson}." ${h.name} nodded and smiled.`,
  ]);
  return `${thanks} ${moral}`;
}

/** The built-in corpus: deterministic, story-like (TinyStories-style) English, generated by the project. */
export function builtinStories(numStories: number = DEFAULT_NUM_STORIES): string[] {
  if (!Number.isInteger(numStories) || numStories < 1) {
    throw new RangeError(`builtinStories: numStories must be a positive integer, got ${numStories}`);
  }
  const rng = new Rng(SEED);
  const stories: string[] = [];
  for (let i = 0; i < numStories; i++) {
    const c = cast(rng);
    stories.push([opening(rng, c), finding(rng, c), trouble(rng, c), ending(rng, c)].join("\n\n"));
  }
  return stories;
}

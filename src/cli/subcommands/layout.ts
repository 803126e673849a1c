import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig, readEnvironment } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import { renderLayout } from '../../planner/layout-image.ts';
import { parseSceneJSON } from '../../scene/json.ts';
import { intOption, parseCommandArgs, type CliCommand } from '../command.ts';

const usage =
  'scenewright layout --scene <scene.json> --out <file.png> [--image <picture>] [--width N] [--cells] [--no-legend]\n' +
  "       Draws every region's box and label in its own colour (512 px wide by default) over a blank canvas or\n" +
  '       over --image; --cells adds the soft-refinement cells as dashed lines.\n' +
  "       Defaults: --width 512 (64…4096, height from the scene's aspect), a legend under the picture, no cells.";

export const command: CliCommand = {
  summary: "draw a scene's boxes and labels as a PNG (over a blank canvas or an image)",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        scene: { type: 'string' },
        out: { type: 'string' },
        image: { type: 'string' },
        width: { type: 'string' },
        cells: { type: 'boolean' },
        'no-legend': { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}"\n\nusage: ${usage}`, 2);
    if (!values.scene || !values.out) throw new UserError(`--scene and --out are required\n\nusage: ${usage}`, 2);
    const config = loadConfig(readEnvironment());
    const limits = {
      maxRegions: config.limits.maxRegions,
      minSize: config.limits.minSize,
      maxSize: config.limits.maxSize,
    };
    let text: string;
    try {
      text = readFileSync(values.scene, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read the scene file ${values.scene}: ${(e as Error).message}`);
    }
    const scene = parseSceneJSON(text, limits);
    let image: Buffer | undefined;
    if (values.image) {
      try {
        image = readFileSync(values.image);
      } catch (e) {
        throw new UserError(`cannot read the image ${values.image}: ${(e as Error).message}`);
      }
    }
    let png: Buffer;
    try {
      png = await renderLayout(scene, {
        image,
        width: intOption(values.width, 'width', 64, 4096),
        showCells: values.cells,
        legend: !values['no-legend'],
      });
    } catch (e) {
      throw new UserError(`cannot draw the layout: ${(e as Error).message}`);
    }
    try {
      writeFileSync(values.out, png);
    } catch (e) {
      throw new UserError(`cannot write ${values.out}: ${(e as Error).message}`);
    }
    process.stderr.write(`wrote ${values.out} (${scene.regions.length} regions)\n`);
    return 0;
  },
};

// The server's face detector (RetinaFace, models/face-detector.onnx) in the on-device worker:
// an onnxruntime-web session with retinaface.js's steps around it, as emotion.detect does.

import { decode, detectionImage, faces, toInput, toRgb } from './retinaface.js';

export class Detector {
  /** `card`: the detector's manifest (models/detector.json, the card's fields). */
  constructor(ort, session, card) {
    Object.assign(this, { ort, session, card });
    this.label = card.label;
  }

  /**
   * Faces in RGBA pixels, boxes in their pixels, largest first (FaceDetector.detect): the
   * image is shrunk so its longer side is at most `maxSide`, or with `upscale` brought to
   * exactly that side (a crop of one face); faces narrower than `minSize` are dropped.
   */
  async detect(rgba, width, height, { maxSide, minSize = 0, upscale = false }) {
    const { image, scale } = detectionImage(toRgb(rgba, width, height), maxSide, upscale);
    const input = toInput(image, this.card);
    const tensor = new this.ort.Tensor('float32', input.data, input.dims);
    const output = await this.session.run({ [this.session.inputNames[0]]: tensor });
    // The outputs in the network's order, as detect.py reads them: loc, conf, landmarks.
    const [loc, conf, landmarks] = this.session.outputNames.map((name) => output[name].data);
    const [, , paddedHeight, paddedWidth] = input.dims;
    const found = decode(loc, conf, landmarks, paddedWidth, paddedHeight, this.card);
    return faces(found, scale, minSize);
  }
}

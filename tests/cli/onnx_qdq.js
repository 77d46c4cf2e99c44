// Helper of test_onnx_qdq.sh (Node.js + onnxruntime-node):
//   node onnx_qdq.js prep IMAGES.idx[.gz] N SCALE MEAN STD OUT.f32   first N images, preprocessed
//   node onnx_qdq.js ort MODEL.onnx IN.f32 N H W C OUT.f32          run ONNX Runtime (NCHW input)
//   node onnx_qdq.js compare A.f32 B.f32 N K [MIN_SAME MAX_STEPS]   top-1 agreement and max difference in output steps
const fs = require('fs');
const zlib = require('zlib');
const [mode, ...a] = process.argv.slice(2);

function readIdx(path) {
  let b = fs.readFileSync(path);
  if (path.endsWith('.gz')) b = zlib.gunzipSync(b);
  const nd = b[3], dims = [];
  for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  return {dims, data: b.subarray(4 + 4 * nd)};
}

(async () => {
  if (mode === 'prep') {
    const [img, n, scale, mean, std, out] = a;
    const {dims, data} = readIdx(img);
    const per = dims.slice(1).reduce((x, y) => x * y, 1), N = +n;
    const x = new Float32Array(N * per);
    for (let i = 0; i < N * per; i++) x[i] = Math.fround((Math.fround(data[i] * +scale) - +mean) / +std);
    fs.writeFileSync(out, Buffer.from(x.buffer));
  } else if (mode === 'ort') {
    const ort = require('onnxruntime-node');
    const [model, inf, n, h, w, c, out] = a;
    // TML_ORT_OPT: ONNX Runtime's graph optimisation level ('all' by default:
    // QDQ pairs fused into its integer kernels; 'disabled': every
    // DequantizeLinear / float op / QuantizeLinear run as the graph says)
    const level = process.env.TML_ORT_OPT || 'all';
    const s = await ort.InferenceSession.create(model, {graphOptimizationLevel: level});
    const hwc = new Float32Array(fs.readFileSync(inf).buffer.slice(0));
    const N = +n, H = +h, W = +w, C = +c;
    // tinyml records are HWC; ONNX takes NCHW
    const chw = new Float32Array(hwc.length);
    for (let b = 0; b < N; b++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++)
          for (let ch = 0; ch < C; ch++) chw[((b * C + ch) * H + y) * W + xx] = hwc[((b * H + y) * W + xx) * C + ch];
    const r = await s.run({input: new ort.Tensor('float32', chw, [N, C, H, W])});
    fs.writeFileSync(out, Buffer.from(new Float32Array(r.output.data).buffer));
  } else if (mode === 'compare') {
    const [fa, fb, n, k, minSame, maxSteps] = a;
    const A = new Float32Array(fs.readFileSync(fa).buffer.slice(0)), B = new Float32Array(fs.readFileSync(fb).buffer.slice(0));
    const N = +n, K = +k;
    if (A.length !== N * K || B.length !== N * K) throw new Error(`sizes ${A.length} ${B.length}, expected ${N * K}`);
    // the output step: the smallest positive gap between tinyml's (dequantized int8) values
    const v = Array.from(A).sort((x, y) => x - y);
    let step = Infinity;
    for (let i = 1; i < v.length; i++) if (v[i] - v[i - 1] > 1e-9) step = Math.min(step, v[i] - v[i - 1]);
    const ms = minSame === undefined ? N : +minSame, mx = maxSteps === undefined ? 1 : +maxSteps;
    // a top-1 that differs only where A's two best scores lie within the
    // allowed output difference is a tie the two runtimes may break either way
    let same = 0, ties = 0, maxd = 0;
    for (let i = 0; i < N; i++) {
      let ia = 0, ib = 0;
      for (let j = 0; j < K; j++) {
        if (A[i * K + j] > A[i * K + ia]) ia = j;
        if (B[i * K + j] > B[i * K + ib]) ib = j;
        maxd = Math.max(maxd, Math.abs(A[i * K + j] - B[i * K + j]));
      }
      if (ia === ib) same++;
      else if (A[i * K + ia] - A[i * K + ib] <= 2 * mx * step * 1.001) ties++;
    }
    console.log(`top1_same ${same} of ${N} (${ties} more differ on a tie within ${2 * mx} steps); max_diff ${(maxd / step).toFixed(3)} steps (step ${step})`);
    process.exit(same + ties >= ms && maxd <= step * (mx + 0.001) ? 0 : 1);
  }
})().catch(e => { console.error(e.message); process.exit(1); });

// RMSNorm's forward and backward on every thread, for x: [rows, h] with h a multiple of 4. The arithmetic
// and its order are the WebAssembly kernels' (packages/tensor/src/kernels/wasm_rmsnorm.ts), so the two give
// the same bits: a row's sums in float64 on two lanes (even and odd elements, then lane 0 + lane 1), the
// elementwise products in float32, and dw summed over the rows in row order (each thread owns a block of
// columns of dw and walks every row, so no sum changes order).
//   forward:  inv_r = 1 / sqrt(mean_j x_rj^2 + eps),   y_rj = (w_j x_rj) inv_r
//   backward: a_rj = dy_rj (x_rj inv_r);  dw_j += a_rj;  c_r = mean_j(w_j a_rj);
//             dx_rj = inv_r ((w_j dy_rj) - x_rj (inv_r c_r))
#include "rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "args.h"

namespace {

void Forward(const float* x, const float* w, double eps, size_t h, size_t r0, size_t r1, float* y, double* inv) {
  for (size_t r = r0; r < r1; r++) {
    const float* xr = x + r * h;
    double s0 = 0, s1 = 0;
    for (size_t j = 0; j < h; j += 2) {
      s0 = s0 + static_cast<double>(xr[j]) * xr[j];
      s1 = s1 + static_cast<double>(xr[j + 1]) * xr[j + 1];
    }
    const double i = 1 / std::sqrt((s0 + s1) / static_cast<double>(h) + eps);
    inv[r] = i;
    const float fi = static_cast<float>(i);
    float* yr = y + r * h;
    for (size_t j = 0; j < h; j++) yr[j] = w[j] * xr[j] * fi;
  }
}

void BackwardRows(const float* x, const float* w, const double* inv, const float* dy, size_t h, size_t r0,
                  size_t r1, float* dx) {
  for (size_t r = r0; r < r1; r++) {
    const float *xr = x + r * h, *dyr = dy + r * h;
    const double i = inv[r];
    double c0 = 0, c1 = 0;
    for (size_t j = 0; j < h; j += 2) {
      c0 = c0 + static_cast<double>(w[j]) * (static_cast<double>(dyr[j]) * (static_cast<double>(xr[j]) * i));
      c1 = c1 + static_cast<double>(w[j + 1]) *
                    (static_cast<double>(dyr[j + 1]) * (static_cast<double>(xr[j + 1]) * i));
    }
    const double c = (c0 + c1) / static_cast<double>(h);
    const float a = static_cast<float>(i), b = static_cast<float>(i * c);
    float* dxr = dx + r * h;
    for (size_t j = 0; j < h; j++) dxr[j] = a * (w[j] * dyr[j] - xr[j] * b);
  }
}

void BackwardColumns(const float* x, const double* inv, const float* dy, size_t h, size_t rows, size_t j0,
                     size_t j1, double* dw) {
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * h, *dyr = dy + r * h;
    const double i = inv[r];
    for (size_t j = j0; j < j1; j++) dw[j] = dw[j] + static_cast<double>(dyr[j]) * (static_cast<double>(xr[j]) * i);
  }
}

// Below this many rows per thread, starting a thread costs more than it saves.
constexpr size_t kMinRowsPerThread = 128;

struct Args {
  Napi::Float32Array x, w;
  size_t h, rows, threads;
};

Args Common(const Napi::CallbackInfo& info, size_t n, size_t threadsAt) {
  if (info.Length() != n) throw Napi::TypeError::New(info.Env(), "rmsnorm: wrong number of arguments");
  auto x = args::Floats(info, 0, "rmsnorm", "x");
  auto w = args::Floats(info, 1, "rmsnorm", "w");
  size_t h = w.ElementLength();
  if (h == 0 || h % 4 != 0 || x.ElementLength() % h != 0)
    throw Napi::RangeError::New(info.Env(), "rmsnorm: w's length must be a multiple of 4 dividing x's");
  size_t threads = args::Positive(info, threadsAt, "rmsnorm", "threads");
  size_t rows = x.ElementLength() / h;
  return {x, w, h, rows, args::Useful(threads, rows, kMinRowsPerThread)};
}

void Check(const Napi::CallbackInfo& info, bool ok, const char* what) {
  if (!ok) throw Napi::RangeError::New(info.Env(), std::string("rmsnorm: ") + what);
}

}  // namespace

// rmsnormForward(x, w, eps, y, inv, threads)
Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  Args a = Common(info, 6, 5);
  double eps = info[2].ToNumber().DoubleValue();
  auto y = args::Floats(info, 3, "rmsnorm", "y");
  auto inv = args::Doubles(info, 4, "rmsnorm", "inv");
  Check(info, y.ElementLength() == a.x.ElementLength() && inv.ElementLength() == a.rows,
        "y must match x, inv hold one value per row");
  const float *x = a.x.Data(), *w = a.w.Data();
  float* py = y.Data();
  double* pinv = inv.Data();
  const size_t h = a.h;
  args::Split(a.rows, a.threads, [&](size_t r0, size_t r1) { Forward(x, w, eps, h, r0, r1, py, pinv); });
  return info.Env().Undefined();
}

// rmsnormBackward(x, w, inv, dy, dx, dw, threads): dx, and dw accumulated (float64) over the rows.
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Args a = Common(info, 7, 6);
  auto inv = args::Doubles(info, 2, "rmsnorm", "inv");
  auto dy = args::Floats(info, 3, "rmsnorm", "dy");
  auto dx = args::Floats(info, 4, "rmsnorm", "dx");
  auto dw = args::Doubles(info, 5, "rmsnorm", "dw");
  const size_t n = a.x.ElementLength();
  Check(info, inv.ElementLength() == a.rows && dy.ElementLength() == n && dx.ElementLength() == n &&
                  dw.ElementLength() == a.h,
        "inv must hold one value per row, dy and dx match x, dw match w");
  const float *x = a.x.Data(), *w = a.w.Data(), *pdy = dy.Data();
  const double* pinv = inv.Data();
  float* pdx = dx.Data();
  double* pdw = dw.Data();
  const size_t h = a.h, rows = a.rows;
  args::Split(rows, a.threads, [&](size_t r0, size_t r1) { BackwardRows(x, w, pinv, pdy, h, r0, r1, pdx); });
  args::Split(h, std::max<size_t>(1, std::min(a.threads, h / 16)), [&](size_t j0, size_t j1) {
    BackwardColumns(x, pinv, pdy, h, rows, j0, j1, pdw);
  });
  return info.Env().Undefined();
}

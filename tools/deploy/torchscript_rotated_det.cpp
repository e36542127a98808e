// Runs a rotated_det model exported by tools/deploy/export_model.py without Python and prints its
// detections: a TorchScript trace (export_model.py --format torchscript, model.ts) or an
// AOTInductor package (export_model.py --format aoti, model.pt2).
//
// Usage:
//   torchscript_rotated_det MODEL IMAGE [IMAGE ...] [--model-format torchscript|aoti]
//       [--input-format BGR|RGB] [--min-size N] [--max-size N] [--ops-lib PATH] [--threads N]
//       [--patch-size N [--overlap N] [--batch-size N] [--nms-threshold T] [--score-threshold S]
//        [--border-margin M] [--keep-truncated] [--compact-size N] [--print-windows]]
//
// MODEL: a .pt2 file is loaded as an AOTInductor package (torch::inductor::AOTIModelPackageLoader),
// anything else as TorchScript; --model-format overrides the extension.
// IMAGE is a binary PPM (P6, 8-bit; e.g. cv2.imwrite("x.ppm", img)) or a tensor saved from Python
// with torch.save: uint8 or float, H x W x 3 (channels in the model's input format) or 3 x H x W.
// With --min-size the image is resized (bilinear, torch's interpolate, align_corners=false) so that
// its short side is min-size and its long side at most max-size, the same rule as the Python
// ResizeShortestEdge test transform; boxes are mapped back to the image's own pixels.
//
// Sliding window (--patch-size): for images larger than the model's input, the same windows, border
// handling and merge as rotated_det.engine.sliding_window.SlidingWindowInference at scale 1: square
// windows of patch-size pixels overlapping by overlap pixels, the last of each row and column
// aligned to the image edge; detections cut by an inner window border whose object the neighbouring
// window sees whole are dropped (unless --keep-truncated); the rest are shifted to image pixels and
// merged by class-wise rotated NMS (the compiled rotated_det::batched_nms_rotated, IoU
// --nms-threshold, default 0.1 as in DOTA's devkit). Windows are read batch-size at a time into one
// reused buffer (from a PPM file, only the rows of the batch's windows are read), so memory stays
// bounded by one batch plus the detections kept; the buffer of raw detections is compacted by NMS
// when it exceeds --compact-size. The exported models take one image, so the windows of a batch go
// through the model one after another.
// --print-windows prints each image's windows ("windows K", then "x0 y0 x1 y1 inner_left inner_top
// inner_right inner_bottom" per window, -1 for an image edge) instead of detecting.
//
// The model takes one float32 tensor 3 x H x W (channels in the model's input format, 0-255) and
// returns (boxes N x 5 [cx, cy, w, h, angle in degrees, counter-clockwise], scores N, classes N).
// Output, per image: "image PATH", "detections N", then one line per detection in the model's
// order (sliding window: by decreasing score):
//   index class score cx cy w h angle
#include <dlfcn.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

using Detections = std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream stream(s);
  std::string part;
  while (std::getline(stream, part, sep)) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// Reads one whitespace-separated token of a PPM header, skipping '#' comments.
std::string ReadPpmToken(std::istream& in) {
  std::string token;
  int c;
  while ((c = in.get()) != EOF) {
    if (c == '#') {
      while ((c = in.get()) != EOF && c != '\n') {
      }
      continue;
    }
    if (std::isspace(c)) {
      if (!token.empty()) break;
      continue;
    }
    token.push_back(static_cast<char>(c));
  }
  return token;
}

// A binary PPM file whose pixels are read region by region (the file stays on disk).
class PpmFile {
 public:
  explicit PpmFile(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw std::runtime_error("cannot open image " + path);
    const std::string magic = ReadPpmToken(in_);
    if (magic != "P6") {
      throw std::runtime_error(path + ": expected a binary PPM (magic P6), got '" + magic + "'");
    }
    width_ = std::stoi(ReadPpmToken(in_));
    height_ = std::stoi(ReadPpmToken(in_));
    const int maxval = std::stoi(ReadPpmToken(in_));
    if (width_ <= 0 || height_ <= 0 || maxval != 255) {
      throw std::runtime_error(path + ": expected positive size and maxval 255, got " +
                               std::to_string(width_) + "x" + std::to_string(height_) + " maxval " +
                               std::to_string(maxval));
    }
    data_offset_ = in_.tellg();  // the header ends with the one whitespace ReadPpmToken consumed
    in_.seekg(0, std::ios::end);
    const std::streamoff expected =
        data_offset_ + static_cast<std::streamoff>(width_) * height_ * 3;
    if (in_.tellg() < expected) {
      throw std::runtime_error(path + ": truncated pixel data (" +
                               std::to_string(static_cast<long long>(in_.tellg() - data_offset_)) +
                               " of " + std::to_string(width_ * height_ * 3) + " bytes)");
    }
  }

  int64_t height() const { return height_; }
  int64_t width() const { return width_; }

  // Pixels [y0, y0 + h) x [x0, x0 + w) as uint8 h x w x 3 in RGB order (the PPM's own order).
  torch::Tensor Read(int64_t x0, int64_t y0, int64_t w, int64_t h) {
    auto region = torch::empty({h, w, 3}, torch::kUInt8);
    char* out = reinterpret_cast<char*>(region.data_ptr<uint8_t>());
    for (int64_t y = 0; y < h; ++y) {
      in_.seekg(data_offset_ + ((y0 + y) * width_ + x0) * 3);
      in_.read(out + y * w * 3, w * 3);
      if (in_.gcount() != w * 3) throw std::runtime_error(path_ + ": read error");
    }
    return region;
  }

 private:
  std::string path_;
  std::ifstream in_;
  int64_t width_ = 0, height_ = 0;
  std::streamoff data_offset_ = 0;
};

torch::Tensor ReadTorchSave(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open tensor file " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::IValue value = torch::pickle_load(bytes);
  if (!value.isTensor()) throw std::runtime_error(path + ": expected a tensor saved by torch.save");
  return value.toTensor();
}

struct Options {
  std::string model_path;
  std::string model_format;  // "torchscript" or "aoti"
  std::vector<std::string> image_paths;
  std::string input_format = "BGR";
  std::string ops_lib;
  int min_size = 0;
  int max_size = 0;
  int threads = 0;
  // sliding window (patch_size > 0)
  int patch_size = 0;
  int overlap = 200;
  int batch_size = 4;
  double nms_threshold = 0.1;
  double score_threshold = 0.0;
  double border_margin = 2.0;
  bool drop_truncated = true;
  int64_t compact_size = 200000;
  bool print_windows = false;
};

const char* kUsage =
    "usage: torchscript_rotated_det MODEL(.ts|.pt2) IMAGE(.ppm|.pt) [IMAGE ...] "
    "[--model-format torchscript|aoti] [--input-format BGR|RGB] [--min-size N] [--max-size N] "
    "[--ops-lib PATH] [--threads N] [--patch-size N [--overlap N] [--batch-size N] "
    "[--nms-threshold T] [--score-threshold S] [--border-margin M] [--keep-truncated] "
    "[--compact-size N] [--print-windows]]";

Options ParseArgs(int argc, char** argv) {
  Options opt;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--input-format") {
      opt.input_format = value();
    } else if (arg == "--model-format") {
      opt.model_format = value();
    } else if (arg == "--min-size") {
      opt.min_size = std::stoi(value());
    } else if (arg == "--max-size") {
      opt.max_size = std::stoi(value());
    } else if (arg == "--ops-lib") {
      opt.ops_lib = value();
    } else if (arg == "--threads") {
      opt.threads = std::stoi(value());
    } else if (arg == "--patch-size") {
      opt.patch_size = std::stoi(value());
    } else if (arg == "--overlap") {
      opt.overlap = std::stoi(value());
    } else if (arg == "--batch-size") {
      opt.batch_size = std::stoi(value());
    } else if (arg == "--nms-threshold") {
      opt.nms_threshold = std::stod(value());
    } else if (arg == "--score-threshold") {
      opt.score_threshold = std::stod(value());
    } else if (arg == "--border-margin") {
      opt.border_margin = std::stod(value());
    } else if (arg == "--keep-truncated") {
      opt.drop_truncated = false;
    } else if (arg == "--compact-size") {
      opt.compact_size = std::stoll(value());
    } else if (arg == "--print-windows") {
      opt.print_windows = true;
    } else if (!arg.empty() && arg[0] == '-') {
      throw std::runtime_error("unknown option " + arg + "\n" + kUsage);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) throw std::runtime_error(kUsage);
  if (opt.input_format != "BGR" && opt.input_format != "RGB") {
    throw std::runtime_error("--input-format must be BGR or RGB, got " + opt.input_format);
  }
  opt.model_path = positional[0];
  opt.image_paths.assign(positional.begin() + 1, positional.end());
  if (opt.model_format.empty()) {
    opt.model_format = EndsWith(opt.model_path, ".pt2") ? "aoti" : "torchscript";
  }
  if (opt.model_format != "torchscript" && opt.model_format != "aoti") {
    throw std::runtime_error("--model-format must be torchscript or aoti, got " + opt.model_format);
  }
  if (opt.print_windows && opt.patch_size <= 0) {
    throw std::runtime_error("--print-windows needs --patch-size");
  }
  if (opt.patch_size != 0) {
    if (opt.patch_size < 0) {
      throw std::runtime_error("--patch-size must be positive, got " +
                               std::to_string(opt.patch_size));
    }
    if (opt.overlap < 0 || opt.overlap >= opt.patch_size) {
      throw std::runtime_error(
          "--overlap must be in [0, --patch-size=" + std::to_string(opt.patch_size) + "), got " +
          std::to_string(opt.overlap));
    }
    if (opt.batch_size < 1) {
      throw std::runtime_error("--batch-size must be >= 1, got " + std::to_string(opt.batch_size));
    }
    if (opt.compact_size < 1) {
      throw std::runtime_error("--compact-size must be >= 1, got " +
                               std::to_string(opt.compact_size));
    }
    if (opt.min_size > 0) {
      throw std::runtime_error(
          "--min-size cannot be combined with --patch-size: the sliding window runs the model on "
          "windows of the image at its own scale");
    }
  }
  return opt;
}

// ----------------------------------------------------------------------------------------------
// Models

class Model {
 public:
  virtual ~Model() = default;
  // image: float32 3 x H x W -> (boxes N x 5, scores N, classes N).
  virtual Detections Run(const torch::Tensor& image) = 0;
};

Detections UnpackOutputs(const std::vector<torch::Tensor>& outputs) {
  if (outputs.size() != 3) {
    throw std::runtime_error("expected the model to return (boxes, scores, classes), got " +
                             std::to_string(outputs.size()) + " outputs");
  }
  return {outputs[0], outputs[1], outputs[2]};
}

class TorchScriptModel final : public Model {
 public:
  explicit TorchScriptModel(const std::string& path) : module_(torch::jit::load(path)) {
    module_.eval();
  }

  Detections Run(const torch::Tensor& image) override {
    torch::IValue output = module_.forward({image});
    std::vector<torch::Tensor> tensors;
    for (const auto& e : output.toTuple()->elements()) tensors.push_back(e.toTensor());
    return UnpackOutputs(tensors);
  }

 private:
  torch::jit::Module module_;
};

// An AOTInductor package written by export_model.py --format aoti. Its metadata names the
// rotated_det ops it calls (through the dispatcher: they must be registered in this process) and
// the input sizes it accepts; the compiled program does not check input sizes itself.
class AotiModel final : public Model {
 public:
  explicit AotiModel(const std::string& path) {
    const auto metadata =
        torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
    auto get = [&](const std::string& key) {
      auto it = metadata.find(key);
      return it == metadata.end() ? std::string() : it->second;
    };
    for (const std::string& op : Split(get("rotated_det.ops"), ',')) {
      if (!c10::Dispatcher::singleton().findSchema({op, ""}).has_value()) {
        throw std::runtime_error(path + " calls " + op +
                                 ", which is not registered in this process: link or load the "
                                 "rotated_det ops library (--ops-lib rotated_det/_C.so)");
      }
    }
    dynamic_ = get("rotated_det.dynamic_resolution") == "1";
    const auto range = Split(get("rotated_det.size_range"), ',');
    if (range.size() == 2) {
      min_side_ = std::stoll(range[0]);
      max_side_ = std::stoll(range[1]);
    }
    const auto traced = Split(get("rotated_det.traced_size"), ',');
    if (traced.size() == 2) {
      traced_h_ = std::stoll(traced[0]);
      traced_w_ = std::stoll(traced[1]);
    }
    loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model");
  }

  Detections Run(const torch::Tensor& image) override {
    const int64_t h = image.size(1), w = image.size(2);
    if (dynamic_ && min_side_ > 0 && (std::min(h, w) < min_side_ || std::max(h, w) > max_side_)) {
      throw std::runtime_error("the AOTInductor package accepts sides in [" +
                               std::to_string(min_side_) + ", " + std::to_string(max_side_) +
                               "] pixels, got " + std::to_string(h) + " x " + std::to_string(w));
    }
    if (!dynamic_ && traced_h_ > 0 && (h != traced_h_ || w != traced_w_)) {
      throw std::runtime_error("the AOTInductor package was compiled for input size 3 x " +
                               std::to_string(traced_h_) + " x " + std::to_string(traced_w_) +
                               " only, got 3 x " + std::to_string(h) + " x " + std::to_string(w));
    }
    return UnpackOutputs(loader_->run({image.contiguous()}));
  }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  bool dynamic_ = false;
  int64_t min_side_ = 0, max_side_ = 0, traced_h_ = 0, traced_w_ = 0;
};

std::unique_ptr<Model> LoadModel(const Options& opt) {
  if (opt.model_format == "aoti") return std::make_unique<AotiModel>(opt.model_path);
  return std::make_unique<TorchScriptModel>(opt.model_path);
}

// ----------------------------------------------------------------------------------------------
// Images

// uint8 H x W x 3 in RGB order -> float32 3 x H x W in the model's channel order, written to out.
void ToModelInput(const torch::Tensor& rgb, const std::string& input_format, torch::Tensor out) {
  torch::Tensor hwc = input_format == "BGR" ? rgb.flip({2}) : rgb;
  out.copy_(hwc.permute({2, 0, 1}));
}

// A whole image -> float32 3 x H x W in the model's channel order.
torch::Tensor LoadImage(const Options& opt, const std::string& path) {
  if (EndsWith(path, ".ppm")) {
    PpmFile ppm(path);
    torch::Tensor rgb = ppm.Read(0, 0, ppm.width(), ppm.height());
    auto image = torch::empty({3, ppm.height(), ppm.width()}, torch::kFloat32);
    ToModelInput(rgb, opt.input_format, image);
    return image;
  }
  torch::Tensor t = ReadTorchSave(path);
  if (t.dim() != 3) throw std::runtime_error(path + ": expected a 3-d image tensor");
  if (t.size(0) != 3 && t.size(2) == 3) t = t.permute({2, 0, 1});
  if (t.size(0) != 3) {
    throw std::runtime_error(path + ": expected 3 channels (HxWx3 or 3xHxW)");
  }
  return t.to(torch::kFloat32).contiguous();
}

// ----------------------------------------------------------------------------------------------
// Sliding window (rotated_det/engine/sliding_window.py at scale 1)

// Start offsets of windows of `size` covering [0, length): 0, stride, 2 stride, ... and a last
// window aligned to the end (rotated_det.data.dota_split.window_starts).
std::vector<int64_t> WindowStarts(int64_t length, int64_t size, int64_t stride) {
  if (length <= size) return {0};
  std::vector<int64_t> starts;
  for (int64_t s = 0; s <= length - size; s += stride) starts.push_back(s);
  if (starts.back() + size < length) starts.push_back(length - size);
  return starts;
}

struct Window {
  int64_t x0, y0, x1, y1;  // x1, y1 exclusive
  // End (left, top) or start (right, bottom) of the neighbouring window across each border, or
  // -1 where the border is the image's edge.
  int64_t inner_left, inner_top, inner_right, inner_bottom;
};

std::vector<Window> GenerateWindows(int64_t height, int64_t width, int64_t patch, int64_t overlap) {
  const int64_t stride = patch - overlap;
  const auto ys = WindowStarts(height, patch, stride), xs = WindowStarts(width, patch, stride);
  std::vector<Window> windows;
  for (size_t iy = 0; iy < ys.size(); ++iy) {
    for (size_t ix = 0; ix < xs.size(); ++ix) {
      windows.push_back(
          Window{xs[ix], ys[iy], std::min(xs[ix] + patch, width), std::min(ys[iy] + patch, height),
                 ix > 0 ? std::min(xs[ix - 1] + patch, width) : -1,
                 iy > 0 ? std::min(ys[iy - 1] + patch, height) : -1,
                 ix + 1 < xs.size() ? xs[ix + 1] : -1, iy + 1 < ys.size() ? ys[iy + 1] : -1});
    }
  }
  return windows;
}

// [N] bool: detections (boxes in window pixels) cut by an inner border of the window whose
// object the neighbouring window sees whole (SlidingWindowInference._truncated).
torch::Tensor Truncated(const torch::Tensor& boxes, const Window& w, double margin) {
  const auto cx = boxes.select(1, 0), cy = boxes.select(1, 1);
  const auto bw = boxes.select(1, 2), bh = boxes.select(1, 3);
  const auto rad = boxes.select(1, 4) * (M_PI / 180.0);
  const auto c = torch::cos(rad).abs(), s = torch::sin(rad).abs();
  const auto half_w = 0.5 * (c * bw + s * bh), half_h = 0.5 * (s * bw + c * bh);
  const auto x0 = cx - half_w + w.x0, y0 = cy - half_h + w.y0;
  const auto x1 = cx + half_w + w.x0, y1 = cy + half_h + w.y0;
  auto out = torch::zeros({boxes.size(0)}, torch::kBool);
  if (w.inner_right >= 0) out |= (x1 >= w.x1 - margin) & (x0 >= w.inner_right + margin);
  if (w.inner_bottom >= 0) out |= (y1 >= w.y1 - margin) & (y0 >= w.inner_bottom + margin);
  if (w.inner_left >= 0) out |= (x0 <= w.x0 + margin) & (x1 <= w.inner_left - margin);
  if (w.inner_top >= 0) out |= (y0 <= w.y0 + margin) & (y1 <= w.inner_top - margin);
  return out;
}

// Class-wise rotated NMS with the compiled op; kept indices by decreasing score, ties by index
// (the order of rotated_det.evaluation.patch_merger).
torch::Tensor ClasswiseNms(const torch::Tensor& boxes, const torch::Tensor& scores,
                           const torch::Tensor& classes, double iou_threshold) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("rotated_det::batched_nms_rotated", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>();
  torch::Tensor keep = std::get<0>(op.call(boxes, scores, classes, iou_threshold).sort());
  auto order = std::get<1>(scores.index_select(0, keep).sort(/*stable=*/true, /*dim=*/0,
                                                             /*descending=*/true));
  return keep.index_select(0, order);
}

// Raw detections of the windows seen so far, in image pixels.
class MergeBuffer {
 public:
  MergeBuffer(double iou_threshold, int64_t compact_size)
      : iou_threshold_(iou_threshold), limit_(compact_size) {}

  void Add(const torch::Tensor& boxes, const torch::Tensor& scores, const torch::Tensor& classes) {
    boxes_.push_back(boxes);
    scores_.push_back(scores);
    classes_.push_back(classes);
    rows_ += boxes.size(0);
    if (rows_ > limit_) {  // compact by NMS (as PatchMerger: see its note on two-round NMS)
      const auto merged = Merge();
      boxes_ = {std::get<0>(merged)};
      scores_ = {std::get<1>(merged)};
      classes_ = {std::get<2>(merged)};
      rows_ = std::get<0>(merged).size(0);
      limit_ = std::max(limit_, 2 * rows_);
      ++compactions_;
    }
  }

  Detections Merge() const {
    if (rows_ == 0) {
      return {torch::zeros({0, 5}), torch::zeros({0}), torch::zeros({0}, torch::kInt64)};
    }
    auto boxes = torch::cat(boxes_), scores = torch::cat(scores_), classes = torch::cat(classes_);
    const auto keep = ClasswiseNms(boxes, scores, classes, iou_threshold_);
    return {boxes.index_select(0, keep), scores.index_select(0, keep),
            classes.index_select(0, keep)};
  }

  int64_t rows() const { return rows_; }
  int compactions() const { return compactions_; }

 private:
  double iou_threshold_;
  int64_t limit_;
  int64_t rows_ = 0;
  int compactions_ = 0;
  std::vector<torch::Tensor> boxes_, scores_, classes_;
};

Detections SlidingWindowDetect(Model& model, const Options& opt, const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  // The window source: a PPM is read window by window from the file; a torch.save tensor is
  // loaded whole.
  std::unique_ptr<PpmFile> ppm;
  torch::Tensor whole;
  int64_t height, width;
  if (EndsWith(path, ".ppm")) {
    ppm = std::make_unique<PpmFile>(path);
    height = ppm->height();
    width = ppm->width();
  } else {
    whole = LoadImage(opt, path);
    height = whole.size(1);
    width = whole.size(2);
  }
  const auto windows = GenerateWindows(height, width, opt.patch_size, opt.overlap);
  const int64_t side = std::min<int64_t>(opt.patch_size, std::max(height, width));
  auto buffer = torch::empty({opt.batch_size, 3, side, side}, torch::kFloat32);
  MergeBuffer merged(opt.nms_threshold, opt.compact_size);
  int64_t dropped = 0, model_calls = 0;
  for (size_t first = 0; first < windows.size(); first += opt.batch_size) {
    const size_t count = std::min<size_t>(opt.batch_size, windows.size() - first);
    std::vector<torch::Tensor> inputs;
    for (size_t i = 0; i < count; ++i) {  // read the batch's windows
      const Window& w = windows[first + i];
      auto out =
          buffer[static_cast<int64_t>(i)].narrow(1, 0, w.y1 - w.y0).narrow(2, 0, w.x1 - w.x0);
      if (ppm) {
        ToModelInput(ppm->Read(w.x0, w.y0, w.x1 - w.x0, w.y1 - w.y0), opt.input_format, out);
      } else {
        out.copy_(whole.narrow(1, w.y0, w.y1 - w.y0).narrow(2, w.x0, w.x1 - w.x0));
      }
      inputs.push_back(out);
    }
    for (size_t i = 0; i < count; ++i) {
      const Window& w = windows[first + i];
      auto [boxes, scores, classes] = model.Run(inputs[i]);
      ++model_calls;
      boxes = boxes.to(torch::kCPU, torch::kFloat32).contiguous();
      scores = scores.to(torch::kCPU, torch::kFloat32).contiguous();
      classes = classes.to(torch::kCPU, torch::kInt64).contiguous();
      if (opt.drop_truncated && boxes.size(0) > 0) {
        const auto keep = torch::logical_not(Truncated(boxes, w, opt.border_margin));
        dropped += boxes.size(0) - keep.sum().item<int64_t>();
        boxes = boxes.index({keep});
        scores = scores.index({keep});
        classes = classes.index({keep});
      }
      if (opt.score_threshold > 0) {
        const auto keep = scores >= opt.score_threshold;
        boxes = boxes.index({keep});
        scores = scores.index({keep});
        classes = classes.index({keep});
      }
      boxes = boxes.clone();
      boxes.select(1, 0).add_(static_cast<double>(w.x0));
      boxes.select(1, 1).add_(static_cast<double>(w.y0));
      merged.Add(boxes, scores, classes);
    }
  }
  auto result = merged.Merge();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "sliding window %s: %lld x %lld pixels, %zu windows of %d px (overlap %d), batch "
               "%d, %lld model calls, %lld truncated detections dropped, %d compactions, %lld "
               "detections after NMS, %.2f s\n",
               path.c_str(), static_cast<long long>(height), static_cast<long long>(width),
               windows.size(), opt.patch_size, opt.overlap, opt.batch_size,
               static_cast<long long>(model_calls), static_cast<long long>(dropped),
               merged.compactions(), static_cast<long long>(std::get<0>(result).size(0)), seconds);
  return result;
}

// Height and width of an image file (a PPM's header only).
std::pair<int64_t, int64_t> ImageSize(const Options& opt, const std::string& path) {
  if (EndsWith(path, ".ppm")) {
    PpmFile ppm(path);
    return {ppm.height(), ppm.width()};
  }
  const auto image = LoadImage(opt, path);
  return {image.size(1), image.size(2)};
}

void PrintWindows(const Options& opt, const std::string& path) {
  const auto [height, width] = ImageSize(opt, path);
  const auto windows = GenerateWindows(height, width, opt.patch_size, opt.overlap);
  std::printf("image %s\nwindows %zu\n", path.c_str(), windows.size());
  for (const Window& w : windows) {
    std::printf("%lld %lld %lld %lld %lld %lld %lld %lld\n", static_cast<long long>(w.x0),
                static_cast<long long>(w.y0), static_cast<long long>(w.x1),
                static_cast<long long>(w.y1), static_cast<long long>(w.inner_left),
                static_cast<long long>(w.inner_top), static_cast<long long>(w.inner_right),
                static_cast<long long>(w.inner_bottom));
  }
}

// One image through the model, with the optional ResizeShortestEdge; boxes in image pixels.
Detections DetectWhole(Model& model, const Options& opt, const std::string& path) {
  torch::Tensor image = LoadImage(opt, path);
  const int64_t height = image.size(1), width = image.size(2);
  if (opt.min_size > 0) {
    const double short_side = std::min(height, width), long_side = std::max(height, width);
    double scale = opt.min_size / short_side;
    if (opt.max_size > 0 && long_side * scale > opt.max_size) scale = opt.max_size / long_side;
    const int64_t new_h = static_cast<int64_t>(height * scale + 0.5);
    const int64_t new_w = static_cast<int64_t>(width * scale + 0.5);
    image = torch::nn::functional::interpolate(image.unsqueeze(0),
                                               torch::nn::functional::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{new_h, new_w})
                                                   .mode(torch::kBilinear)
                                                   .align_corners(false))
                .squeeze(0)
                .contiguous();
  }
  auto [boxes, scores, classes] = model.Run(image);
  boxes = boxes.to(torch::kCPU, torch::kFloat64).contiguous();
  if (opt.min_size > 0) {
    // Map back to input pixels: centres and sides scale with the resize (x and y factors
    // differ only by the rounding of the resized size; their mean is used).
    const double sx = static_cast<double>(width) / image.size(2);
    const double sy = static_cast<double>(height) / image.size(1);
    if (std::abs(sx - sy) > 1e-2 * sx) {
      std::cerr << "warning: anisotropic resize; boxes are scaled by the mean factor\n";
    }
    boxes.narrow(1, 0, 4).mul_(0.5 * (sx + sy));
  }
  return {boxes, scores, classes};
}

void Print(const std::string& path, const Detections& detections) {
  const auto boxes = std::get<0>(detections).to(torch::kCPU, torch::kFloat64).contiguous();
  const auto scores = std::get<1>(detections).to(torch::kCPU, torch::kFloat64).contiguous();
  const auto classes = std::get<2>(detections).to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t n = boxes.size(0);
  std::printf("image %s\ndetections %lld\n", path.c_str(), static_cast<long long>(n));
  auto b = boxes.accessor<double, 2>();
  auto sc = scores.accessor<double, 1>();
  auto cl = classes.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    std::printf("%lld %lld %.8g %.8g %.8g %.8g %.8g %.8g\n", static_cast<long long>(i),
                static_cast<long long>(cl[i]), sc[i], b[i][0], b[i][1], b[i][2], b[i][3], b[i][4]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = ParseArgs(argc, argv);
    if (!opt.ops_lib.empty() && dlopen(opt.ops_lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      throw std::runtime_error(std::string("cannot load ops library: ") + dlerror());
    }
    if (opt.threads > 0) torch::set_num_threads(opt.threads);
    if (opt.print_windows) {
      for (const std::string& path : opt.image_paths) PrintWindows(opt, path);
      return 0;
    }
    torch::NoGradGuard no_grad;
    std::unique_ptr<Model> model = LoadModel(opt);
    for (const std::string& path : opt.image_paths) {
      Print(path, opt.patch_size > 0 ? SlidingWindowDetect(*model, opt, path)
                                     : DetectWhole(*model, opt, path));
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

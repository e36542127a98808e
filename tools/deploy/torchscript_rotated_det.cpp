// Runs a rotated_det model exported by tools/deploy/export_model.py (--format torchscript) without
// Python and prints its detections.
//
// Usage:
//   torchscript_rotated_det MODEL.ts IMAGE [IMAGE ...] [--input-format BGR|RGB] [--min-size N]
//                           [--max-size N] [--ops-lib PATH] [--threads N]
//
// IMAGE is a binary PPM (P6, 8-bit; e.g. cv2.imwrite("x.ppm", img)) or a tensor saved from Python with
// torch.save: uint8 or float, H x W x 3 (channels in the model's input format) or 3 x H x W.
// With --min-size the image is resized (bilinear, torch's interpolate, align_corners=false) so that
// its short side is min-size and its long side at most max-size, the same rule as the Python
// ResizeShortestEdge test transform; boxes are mapped back to the image's own pixels.
//
// The model takes one float32 tensor 3 x H x W (channels in the model's input format, 0-255) and
// returns (boxes N x 5 [cx, cy, w, h, angle in degrees, counter-clockwise], scores N, classes N).
// Output, per image: "image PATH", "detections N", then one line per detection in the model's
// order:
//   index class score cx cy w h angle
#include <dlfcn.h>

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

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

// Returns the image as uint8 H x W x 3 in RGB order (the PPM's own order).
torch::Tensor ReadPpm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open image " + path);
  const std::string magic = ReadPpmToken(in);
  if (magic != "P6") {
    throw std::runtime_error(path + ": expected a binary PPM (magic P6), got '" + magic + "'");
  }
  const int width = std::stoi(ReadPpmToken(in));
  const int height = std::stoi(ReadPpmToken(in));
  const int maxval = std::stoi(ReadPpmToken(in));
  if (width <= 0 || height <= 0 || maxval != 255) {
    throw std::runtime_error(path + ": expected positive size and maxval 255, got " +
                             std::to_string(width) + "x" + std::to_string(height) + " maxval " +
                             std::to_string(maxval));
  }
  auto image = torch::empty({height, width, 3}, torch::kUInt8);
  in.read(reinterpret_cast<char*>(image.data_ptr<uint8_t>()), image.numel());
  if (in.gcount() != image.numel()) {
    throw std::runtime_error(path + ": truncated pixel data (" + std::to_string(in.gcount()) +
                             " of " + std::to_string(image.numel()) + " bytes)");
  }
  return image;
}

torch::Tensor ReadTorchSave(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open tensor file " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::IValue value = torch::pickle_load(bytes);
  if (!value.isTensor()) throw std::runtime_error(path + ": expected a tensor saved by torch.save");
  return value.toTensor();
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Options {
  std::string model_path;
  std::vector<std::string> image_paths;
  std::string input_format = "BGR";
  std::string ops_lib;
  int min_size = 0;
  int max_size = 0;
  int threads = 0;
};

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
    } else if (arg == "--min-size") {
      opt.min_size = std::stoi(value());
    } else if (arg == "--max-size") {
      opt.max_size = std::stoi(value());
    } else if (arg == "--ops-lib") {
      opt.ops_lib = value();
    } else if (arg == "--threads") {
      opt.threads = std::stoi(value());
    } else if (!arg.empty() && arg[0] == '-') {
      throw std::runtime_error("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) {
    throw std::runtime_error(
        "usage: torchscript_rotated_det MODEL.ts IMAGE(.ppm|.pt) [IMAGE ...] "
        "[--input-format BGR|RGB] [--min-size N] [--max-size N] [--ops-lib PATH] [--threads N]");
  }
  if (opt.input_format != "BGR" && opt.input_format != "RGB") {
    throw std::runtime_error("--input-format must be BGR or RGB, got " + opt.input_format);
  }
  opt.model_path = positional[0];
  opt.image_paths.assign(positional.begin() + 1, positional.end());
  return opt;
}

// Image -> float32 3 x H x W in the model's channel order.
torch::Tensor LoadImage(const Options& opt, const std::string& path) {
  if (EndsWith(path, ".ppm")) {
    torch::Tensor rgb = ReadPpm(path);
    torch::Tensor hwc = opt.input_format == "BGR" ? rgb.flip({2}) : rgb;
    return hwc.permute({2, 0, 1}).to(torch::kFloat32).contiguous();
  }
  torch::Tensor t = ReadTorchSave(path);
  if (t.dim() != 3) throw std::runtime_error(path + ": expected a 3-d image tensor");
  if (t.size(0) != 3 && t.size(2) == 3) t = t.permute({2, 0, 1});
  if (t.size(0) != 3) {
    throw std::runtime_error(path + ": expected 3 channels (HxWx3 or 3xHxW)");
  }
  return t.to(torch::kFloat32).contiguous();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = ParseArgs(argc, argv);
    if (!opt.ops_lib.empty() && dlopen(opt.ops_lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      throw std::runtime_error(std::string("cannot load ops library: ") + dlerror());
    }
    if (opt.threads > 0) torch::set_num_threads(opt.threads);
    torch::NoGradGuard no_grad;

    torch::jit::Module module = torch::jit::load(opt.model_path);
    module.eval();

    for (const std::string& path : opt.image_paths) {
      torch::Tensor image = LoadImage(opt, path);
      const int64_t height = image.size(1), width = image.size(2);
      double scale = 1.0;
      if (opt.min_size > 0) {
        const double short_side = std::min(height, width), long_side = std::max(height, width);
        scale = opt.min_size / short_side;
        if (opt.max_size > 0 && long_side * scale > opt.max_size) scale = opt.max_size / long_side;
        const int64_t new_h = static_cast<int64_t>(height * scale + 0.5);
        const int64_t new_w = static_cast<int64_t>(width * scale + 0.5);
        image = torch::nn::functional::interpolate(
                    image.unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{new_h, new_w})
                                            .mode(torch::kBilinear)
                                            .align_corners(false))
                    .squeeze(0);
        image = image.contiguous();
      }

      torch::IValue output = module.forward({image});
      auto elements = output.toTuple()->elements();
      if (elements.size() != 3) {
        throw std::runtime_error("expected the model to return (boxes, scores, classes), got " +
                                 std::to_string(elements.size()) + " outputs");
      }
      torch::Tensor boxes = elements[0].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
      torch::Tensor scores = elements[1].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
      torch::Tensor classes = elements[2].toTensor().to(torch::kCPU, torch::kInt64).contiguous();
      if (opt.min_size > 0) {
        // Map back to input pixels: centres and sides scale with the resize (x and y factors
        // differ only by the rounding of the resized size; their mean is used).
        const double sx = static_cast<double>(width) / image.size(2);
        const double sy = static_cast<double>(height) / image.size(1);
        if (std::abs(sx - sy) > 1e-2 * sx) {
          std::cerr << "warning: anisotropic resize; boxes are scaled by the mean factor\n";
        }
        const double s = 0.5 * (sx + sy);
        boxes.narrow(1, 0, 4).mul_(s);
      }

      const int64_t n = boxes.size(0);
      std::printf("image %s\ndetections %lld\n", path.c_str(), static_cast<long long>(n));
      auto b = boxes.accessor<double, 2>();
      auto sc = scores.accessor<double, 1>();
      auto cl = classes.accessor<int64_t, 1>();
      for (int64_t i = 0; i < n; ++i) {
        std::printf("%lld %lld %.8g %.8g %.8g %.8g %.8g %.8g\n", static_cast<long long>(i),
                    static_cast<long long>(cl[i]), sc[i], b[i][0], b[i][1], b[i][2], b[i][3],
                    b[i][4]);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

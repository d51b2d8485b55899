#include "frontend/data.h"

#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sequent {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/data_test_" + name;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void WriteGz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

void AppendBigEndian(std::string* out, uint64_t v, int size) {
  for (int i = size - 1; i >= 0; --i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::string IdxHeader(uint8_t type, const std::vector<uint32_t>& dims) {
  std::string s;
  s.push_back(0);
  s.push_back(0);
  s.push_back(static_cast<char>(type));
  s.push_back(static_cast<char>(dims.size()));
  for (uint32_t d : dims) AppendBigEndian(&s, d, 4);
  return s;
}

// Two 2x3 u8 images with values 0, 10, ..., 110 and 255 in the last pixel.
std::string SmallImages() {
  std::string s = IdxHeader(0x08, {2, 2, 3});
  for (int i = 0; i < 12; ++i)
    s.push_back(static_cast<char>(i == 11 ? 255 : i * 10));
  return s;
}

// ---------------------------------------------------------------------------------------
// IDX

TEST(LoadIdxTest, RawU8ImagesBecomeF32) {
  std::string path = TempPath("images.idx");
  WriteFile(path, SmallImages());
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "f32[2,2,3]");
  EXPECT_EQ(t->GetAsDouble(0), 0.0);
  EXPECT_EQ(t->GetAsDouble(4), 40.0);
  EXPECT_EQ(t->GetAsDouble(11), 255.0);
}

TEST(LoadIdxTest, GzippedU8LabelsBecomeI32) {
  std::string path = TempPath("labels.idx.gz");
  std::string bytes = IdxHeader(0x08, {5});
  for (char c : {3, 1, 4, 1, 9}) bytes.push_back(c);
  WriteGz(path, bytes);
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "i32[5]");
  EXPECT_EQ(t->ToVector<int32_t>(), (std::vector<int32_t>{3, 1, 4, 1, 9}));
}

TEST(LoadIdxTest, WiderTypesAreBigEndian) {
  std::string i16 = IdxHeader(0x0B, {2});
  AppendBigEndian(&i16, 0xFFFE, 2);  // -2
  AppendBigEndian(&i16, 300, 2);
  WriteFile(TempPath("i16.idx"), i16);
  absl::StatusOr<Tensor> a = LoadIdx(TempPath("i16.idx"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ToVector<int32_t>(), (std::vector<int32_t>{-2, 300}));

  std::string f32 = IdxHeader(0x0D, {1, 2});
  AppendBigEndian(&f32, 0x3FC00000, 4);  // 1.5
  AppendBigEndian(&f32, 0xC0200000, 4);  // -2.5
  WriteGz(TempPath("f32.idx.gz"), f32);
  absl::StatusOr<Tensor> b = LoadIdx(TempPath("f32.idx.gz"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->type().ToString(), "f32[1,2]");
  EXPECT_EQ(b->ToVector<float>(), (std::vector<float>{1.5f, -2.5f}));

  std::string f64 = IdxHeader(0x0E, {1});
  AppendBigEndian(&f64, 0x4009000000000000ull, 8);  // 3.125
  WriteFile(TempPath("f64.idx"), f64);
  absl::StatusOr<Tensor> c = LoadIdx(TempPath("f64.idx"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->type().ToString(), "f64[1]");
  EXPECT_EQ(c->GetAsDouble(0), 3.125);
}

TEST(LoadIdxTest, MissingFile) {
  std::string path = TempPath("does-not-exist.idx");
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::IsNotFound(t.status()));
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr(path + ": no such file"));
}

TEST(LoadIdxTest, TruncatedNamesHeaderAndActualSizes) {
  std::string path = TempPath("train-images-idx3-ubyte.gz");
  std::string bytes =
      IdxHeader(0x08, {60000, 28, 28}) + std::string(1000, '\x07');
  WriteGz(path, bytes);
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      std::string(t.status().message()),
      HasSubstr(path +
                ": truncated: header says 60000 u8 images of 28x28 (47040000 "
                "bytes), file has 1000 bytes"));
}

TEST(LoadIdxTest, TrailingDataIsAnError) {
  std::string path = TempPath("trailing.idx");
  WriteFile(path, SmallImages() + "xx");
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("more data"));
}

TEST(LoadIdxTest, BadMagic) {
  std::string path = TempPath("bad-magic.idx");
  WriteFile(path, "PK\x03\x04 this is a zip file");
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr(path + ": bad magic 0x504b0304"));

  WriteFile(path, IdxHeader(0x42, {1}) + "x");
  t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("unknown IDX element type 0x42"));
}

TEST(LoadIdxTest, HostileHugeDimsFailFast) {
  std::string path = TempPath("hostile.idx");
  WriteFile(path, IdxHeader(0x08, {0x80000000u, 0x80000000u}) + "tiny");
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Tensor> t = LoadIdx(path);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("u8[2147483648,2147483648]"));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("GiB"));
  EXPECT_LT(elapsed, std::chrono::seconds(1));

  // Under the cap but far more than the file holds: fails on the actual length,
  // without allocating what the header claims.
  WriteFile(path, IdxHeader(0x08, {1000000, 1000, 3}) + "tiny");
  t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("truncated: header says 1000000 u8 images of 1000x3 "
                        "(3000000000 bytes), "
                        "file has 4 bytes"));
}

TEST(LoadIdxTest, CorruptGzip) {
  std::string path = TempPath("corrupt.idx.gz");
  std::string good = TempPath("good.idx.gz");
  WriteGz(good, SmallImages());
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  WriteFile(path,
            bytes.substr(0, bytes.size() - 12));  // cut into the deflate stream
  absl::StatusOr<Tensor> t = LoadIdx(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr(path + ": "));
}

// ---------------------------------------------------------------------------------------
// Fashion-MNIST

TEST(FashionMnistTest, LoadsInstalledDataset) {
  struct stat st;
  if (stat(kFashionMnistDir, &st) != 0)
    GTEST_SKIP() << kFashionMnistDir << " is not installed";
  auto data = LoadFashionMnist();
  ASSERT_TRUE(data.ok()) << data.status();
  const auto& [train, test] = *data;
  EXPECT_EQ(train.x.type().ToString(), "f32[60000,28,28]");
  EXPECT_EQ(train.y.type().ToString(), "i32[60000]");
  EXPECT_EQ(test.x.type().ToString(), "f32[10000,28,28]");
  EXPECT_EQ(test.y.type().ToString(), "i32[10000]");
  std::map<int32_t, int> counts;
  for (int32_t label : train.y.data<int32_t>()) counts[label]++;
  ASSERT_EQ(counts.size(), 10u);
  EXPECT_EQ(counts.begin()->first, 0);
  EXPECT_EQ(counts.rbegin()->first, 9);
  for (const auto& [label, count] : counts)
    EXPECT_EQ(count, 6000) << "class " << label;
  float lo = 1, hi = 0;
  for (float v : test.x.data<float>()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

TEST(FashionMnistTest, MissingDirectoryNamesDebianPackage) {
  std::string dir = TempPath("no-such-dataset-dir");
  auto data = LoadFashionMnist(dir);
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(absl::IsNotFound(data.status()));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr(dir));
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("dataset-fashion-mnist"));
}

TEST(FashionMnistTest, MissingFileNamesDebianPackage) {
  std::string dir = TempPath("partial-mnist");
  mkdir(dir.c_str(), 0755);
  auto data = LoadFashionMnist(dir);
  ASSERT_FALSE(data.ok());
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr(dir + "/train-images-idx3-ubyte.gz: no such file"));
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("dataset-fashion-mnist"));
}

TEST(MnistTest, SmallDirectoryScalesAndChecksCounts) {
  std::string dir = TempPath("tiny-mnist");
  mkdir(dir.c_str(), 0755);
  std::string images = IdxHeader(0x08, {2, 28, 28});
  for (int i = 0; i < 2 * 28 * 28; ++i)
    images.push_back(static_cast<char>(i % 256));
  std::string labels = IdxHeader(0x08, {2}) + std::string("\x07\x02", 2);
  WriteGz(dir + "/train-images-idx3-ubyte.gz", images);
  WriteGz(dir + "/train-labels-idx1-ubyte.gz", labels);
  WriteGz(dir + "/t10k-images-idx3-ubyte.gz", images);
  // One label for two images.
  WriteGz(dir + "/t10k-labels-idx1-ubyte.gz", IdxHeader(0x08, {1}) + "\x03");
  auto data = LoadMnist(dir);
  ASSERT_FALSE(data.ok());
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("has 2 images but"));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("has 1 labels"));

  WriteGz(dir + "/t10k-labels-idx1-ubyte.gz", labels);
  data = LoadMnist(dir);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FLOAT_EQ(data->first.x.GetAsDouble(255), 1.0);
  EXPECT_FLOAT_EQ(data->first.x.GetAsDouble(51), 51.0 / 255.0);
  EXPECT_EQ(data->second.y.ToVector<int32_t>(), (std::vector<int32_t>{7, 2}));
  data = LoadMnist(dir, /*scale=*/false);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->first.x.GetAsDouble(255), 255.0);
}

// ---------------------------------------------------------------------------------------
// CSV

TEST(LoadCsvTest, HeaderQuotesAndBlankLines) {
  std::string path = TempPath("table.csv");
  WriteFile(
      path,
      "\"sepal length\", width ,class\r\n1.5,2,0\r\n\n-3e2, 4.25 ,\"1\"\n");
  absl::StatusOr<CsvTable> t = LoadCsv(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->columns,
            (std::vector<std::string>{"sepal length", "width", "class"}));
  EXPECT_EQ(t->values.type().ToString(), "f32[2,3]");
  EXPECT_EQ(t->values.ToVector<float>(),
            (std::vector<float>{1.5f, 2, 0, -300, 4.25f, 1}));
}

TEST(LoadCsvTest, NoHeaderAndOtherDelimiter) {
  std::string path = TempPath("plain.tsv");
  WriteFile(path, "1;2\n3;4");
  absl::StatusOr<CsvTable> t =
      LoadCsv(path, {.header = false, .delimiter = ';'});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->columns, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(t->values.ToVector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

TEST(LoadCsvTest, RaggedRowNamesLine) {
  std::string path = TempPath("ragged.csv");
  WriteFile(path, "a,b,c\n1,2,3\n4,5\n");
  absl::StatusOr<CsvTable> t = LoadCsv(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      std::string(t.status().message()),
      HasSubstr(
          path +
          ":3: ragged row: 2 cells, expected 3 as in the header on line 1"));
}

TEST(LoadCsvTest, NonNumericCellNamesRowColumnAndText) {
  std::string path = TempPath("text.csv");
  WriteFile(path, "x,species\n1,0\n2,setosa\n");
  absl::StatusOr<CsvTable> t = LoadCsv(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      std::string(t.status().message()),
      HasSubstr(path +
                ":3: row 2, column 2 ('species'): not a number: \"setosa\""));

  WriteFile(path, "x,y\n1,\n");
  t = LoadCsv(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("column 2 ('y'): not a number: \"\""));
}

TEST(LoadCsvTest, MissingAndEmptyFiles) {
  absl::StatusOr<CsvTable> t = LoadCsv(TempPath("missing.csv"));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("missing.csv: no such file"));
  WriteFile(TempPath("empty.csv"), "\n\n");
  t = LoadCsv(TempPath("empty.csv"));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("empty file"));
}

TEST(SplitXYTest, LabelColumnBecomesY) {
  std::string path = TempPath("xy.csv");
  WriteFile(path, "a,label,b\n1,0,2\n3,2,4\n");
  absl::StatusOr<CsvTable> t = LoadCsv(path);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<Dataset> d = SplitXY(*t, "label");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->x.type().ToString(), "f32[2,2]");
  EXPECT_EQ(d->x.ToVector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(d->y.type().ToString(), "i32[2]");
  EXPECT_EQ(d->y.ToVector<int32_t>(), (std::vector<int32_t>{0, 2}));

  d = SplitXY(*t, "b", DType::kF32);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->y.ToVector<float>(), (std::vector<float>{2, 4}));

  d = SplitXY(*t, "nope");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("columns are: a, label, b"));

  WriteFile(path, "a,y\n1,0.5\n");
  t = LoadCsv(path);
  ASSERT_TRUE(t.ok()) << t.status();
  d = SplitXY(*t, "y");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("not a whole number"));
}

// ---------------------------------------------------------------------------------------
// NPY

// The exact bytes numpy 1.x/2.x writes for np.save(f, np.array([[1, 2, 3], [4,
// 5, 6]], dtype='<i4')): magic, version 1.0, header length 118, dict padded to
// 128 bytes.
std::string NpyBytes(const std::string& dict, const std::string& data,
                     int major = 1) {
  size_t prefix = major == 1 ? 10 : 12;
  size_t total = prefix + dict.size() + 1;
  std::string header = dict + std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string s = std::string("\x93NUMPY", 6);
  s.push_back(static_cast<char>(major));
  s.push_back(0);
  for (size_t i = 0; i < prefix - 8; ++i)
    s.push_back(static_cast<char>(header.size() >> (8 * i)));
  return s + header + data;
}

template <typename T>
std::string RawBytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()),
                     v.size() * sizeof(T));
}

// np.save of np.array([[1, 2, 3], [4, 5, 6]], dtype='<i4') writes exactly these
// 152 bytes (checked once against numpy): version 1.0, header length 118, data
// at offset 128.
TEST(NpyTest, GoldenI32MatchesNumpyLayout) {
  std::string golden =
      NpyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
               RawBytes<int32_t>({1, 2, 3, 4, 5, 6}));
  ASSERT_EQ(golden.size(), 128u + 24u);
  std::string path = TempPath("golden.npy");
  WriteFile(path, golden);
  absl::StatusOr<Tensor> t = LoadNpy(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "i32[2,3]");
  EXPECT_EQ(t->ToVector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));

  // SaveNpy writes the same bytes numpy does.
  std::string saved = TempPath("saved.npy");
  ASSERT_TRUE(SaveNpy(saved, *t).ok());
  std::ifstream in(saved, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, golden);
}

TEST(NpyTest, OtherDtypesAndVersions) {
  std::string path = TempPath("types.npy");
  WriteFile(
      path,
      NpyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
               std::string("\x00\x80\xff", 3)));
  absl::StatusOr<Tensor> t = LoadNpy(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "i32[3]");
  EXPECT_EQ(t->ToVector<int32_t>(), (std::vector<int32_t>{0, 128, 255}));

  // Keys in another order, double quotes, version 2.0.
  WriteFile(
      path,
      NpyBytes(
          "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"|b1\"}",
          std::string("\x01\x00", 2), 2));
  t = LoadNpy(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "bool[2]");
  EXPECT_EQ(t->GetAsDouble(0), 1.0);
  EXPECT_EQ(t->GetAsDouble(1), 0.0);

  WriteFile(path,
            NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                     RawBytes<double>({2.5}), 3));
  t = LoadNpy(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type().ToString(), "f64[]");
  EXPECT_EQ(t->GetAsDouble(0), 2.5);
}

TEST(NpyTest, RoundTrip) {
  std::string path = TempPath("roundtrip.npy");
  std::vector<Tensor> tensors = {
      Tensor::FromVector<float>({1.5f, -2, 3e-8f, 4, 5, 6}, Shape{3, 2}),
      Tensor::FromVector<double>({1.0 / 3, -7}, Shape{2}),
      Tensor::FromVector<int64_t>({int64_t{1} << 40, -5, 0, 7}, Shape{2, 1, 2}),
      Tensor(DType::kI32, Shape{0, 4}),
  };
  for (const Tensor& original : tensors) {
    ASSERT_TRUE(SaveNpy(path, original).ok()) << original.type().ToString();
    absl::StatusOr<Tensor> back = LoadNpy(path);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->type(), original.type());
    for (int64_t i = 0; i < original.num_elements(); ++i) {
      EXPECT_EQ(back->GetAsDouble(i), original.GetAsDouble(i));
    }
  }
  absl::Status st = SaveNpy(path, Tensor(DType::kBF16, Shape{2}));
  EXPECT_THAT(std::string(st.message()), HasSubstr("cannot save bf16[2]"));
}

TEST(NpyTest, BadHeaders) {
  std::string path = TempPath("bad.npy");
  const std::string data = RawBytes<float>({1, 2});
  struct Case {
    std::string bytes;
    std::string message;
  };
  std::vector<Case> cases = {
      {"not numpy at all", "bad magic"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                data)
           .replace(6, 1, "\x07"),
       "unsupported .npy format version 7.0"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': False}", data),
       "missing key(s) shape"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
                "'extra': 1}",
                data),
       "unexpected key 'extra'"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }",
                data),
       "shape (n) must be written (n,)"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': false, 'shape': (2,), }",
                data),
       "expected True or False"},
      {NpyBytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                "'shape': (2,)}",
                data),
       "key 'descr' appears twice"},
      {NpyBytes(
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
           data),
       "text after the closing '}'"},
      {NpyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                data),
       "big-endian data is not supported"},
      {NpyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                data),
       "unsupported dtype '<c8'"},
      {NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
                data),
       "expected a non-negative integer dimension"},
      {std::string("\x93NUMPY\x01\x00\xff\x00{}", 12), "truncated .npy header"},
  };
  for (const Case& c : cases) {
    WriteFile(path, c.bytes);
    absl::StatusOr<Tensor> t = LoadNpy(path);
    ASSERT_FALSE(t.ok()) << c.message;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(path + ": "))
        << c.message;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message));
  }
}

TEST(NpyTest, FortranOrderIsAnError) {
  std::string path = TempPath("fortran.npy");
  WriteFile(
      path,
      NpyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }",
               RawBytes<float>({1, 2})));
  absl::StatusOr<Tensor> t = LoadNpy(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr(path + ": fortran_order is True"));
}

TEST(NpyTest, DataLengthMustMatchExactly) {
  std::string path = TempPath("short.npy");
  WriteFile(
      path,
      NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
               RawBytes<float>({1, 2, 3, 4, 5})));
  absl::StatusOr<Tensor> t = LoadNpy(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      std::string(t.status().message()),
      HasSubstr(path +
                ": truncated: header says <f4 shape (2, 3) = 24 bytes of data, "
                "file has 20"));

  WriteFile(
      path,
      NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
               RawBytes<float>({1, 2})));
  t = LoadNpy(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("trailing data"));

  WriteFile(
      path,
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, "
               "4294967296), }",
               ""));
  t = LoadNpy(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("GiB"));
}

// ---------------------------------------------------------------------------------------
// TakeRows / TrainTestSplit

TEST(TakeRowsTest, GathersRowsOfAnyDtype) {
  Tensor x = Tensor::FromVector<int64_t>({0, 1, 10, 11, 20, 21}, Shape{3, 2});
  Tensor r = TakeRows(x, {2, 0, 2});
  EXPECT_EQ(r.type().ToString(), "i64[3,2]");
  EXPECT_EQ(r.ToVector<int64_t>(),
            (std::vector<int64_t>{20, 21, 0, 1, 20, 21}));
  Tensor b = Tensor::FromVector<bool>({true, false, true}, Shape{3});
  EXPECT_EQ(TakeRows(b, {1, 2}).ToString(),
            Tensor::FromVector<bool>({false, true}, Shape{2}).ToString());
}

Dataset Labeled(int64_t n, const std::vector<int32_t>& labels) {
  std::vector<float> xs(n * 2);
  for (int64_t i = 0; i < n; ++i) {
    xs[2 * i] = static_cast<float>(i);
    xs[2 * i + 1] = static_cast<float>(labels[i]);
  }
  return {Tensor::FromVector(xs, Shape{n, 2}),
          Tensor::FromVector(labels, Shape{n})};
}

TEST(TrainTestSplitTest, SizesAndRowsStayPaired) {
  std::vector<int32_t> labels(10);
  for (int i = 0; i < 10; ++i) labels[i] = i % 3;
  Dataset d = Labeled(10, labels);
  auto split = TrainTestSplit(d, 0.25, /*seed=*/7);
  ASSERT_TRUE(split.ok()) << split.status();
  const auto& [train, test] = *split;
  EXPECT_EQ(train.x.type().ToString(), "f32[7,2]");
  EXPECT_EQ(test.x.type().ToString(), "f32[3,2]");  // ceil(2.5)
  EXPECT_EQ(test.y.type().ToString(), "i32[3]");
  std::vector<bool> seen(10, false);
  for (const Dataset* part : {&train, &test}) {
    for (int64_t r = 0; r < part->x.shape()[0]; ++r) {
      int64_t row = static_cast<int64_t>(part->x.GetAsDouble(2 * r));
      EXPECT_FALSE(seen[row]);
      seen[row] = true;
      EXPECT_EQ(part->x.GetAsDouble(2 * r + 1), part->y.GetAsDouble(r));
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 10);

  // Same seed, same split; another seed, another order.
  auto again = TrainTestSplit(d, 0.25, 7);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->second.x.ToVector<float>(), test.x.ToVector<float>());
  auto other = TrainTestSplit(d, 0.25, 8);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->first.x.ToVector<float>(), train.x.ToVector<float>());

  auto plain = TrainTestSplit(d, 0.2, 0, /*shuffle=*/false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->second.x.ToVector<float>(),
            (std::vector<float>{8, 2, 9, 0}));
}

TEST(TrainTestSplitTest, StratifyKeepsProportions) {
  // 60 / 30 / 10 rows of classes 0 / 1 / 2.
  std::vector<int32_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i < 60 ? 0 : i < 90 ? 1 : 2);
  Dataset d = Labeled(100, labels);
  for (uint64_t seed : {1, 2, 3}) {
    auto split = TrainTestSplit(d, 0.2, seed, true, /*stratify=*/true);
    ASSERT_TRUE(split.ok()) << split.status();
    std::map<int, int> train_counts, test_counts;
    for (int32_t y : split->first.y.data<int32_t>()) train_counts[y]++;
    for (int32_t y : split->second.y.data<int32_t>()) test_counts[y]++;
    EXPECT_EQ(test_counts, (std::map<int, int>{{0, 12}, {1, 6}, {2, 2}}));
    EXPECT_EQ(train_counts, (std::map<int, int>{{0, 48}, {1, 24}, {2, 8}}));
  }
}

TEST(TrainTestSplitTest, Errors) {
  Dataset d = Labeled(4, {0, 0, 1, 2});
  auto s = TrainTestSplit(d, 1.0, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("test_size must be in (0, 1), got 1"));
  s = TrainTestSplit(d, 0.5, 0, true, true);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("class 1 has only 1 row"));
  s = TrainTestSplit(Dataset{d.x, Tensor(DType::kI32, Shape{3})}, 0.5, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("x has 4 rows"));
}

// ---------------------------------------------------------------------------------------
// Scalers

TEST(StandardScalerTest, MatchesScikitLearn) {
  // sklearn: StandardScaler().fit([[0, 0, 5], [0, 0, 5], [1, 1, 5], [1, 1, 5]])
  // has mean_ [0.5, 0.5, 5], scale_ [0.5, 0.5, 1].
  Tensor x = Tensor::FromVector<float>({0, 0, 5, 0, 0, 5, 1, 1, 5, 1, 1, 5},
                                       Shape{4, 3});
  StandardScaler scaler;
  EXPECT_FALSE(scaler.transform(x).ok());
  absl::StatusOr<Tensor> z = scaler.fit_transform(x);
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(scaler.mean.ToVector<double>(), (std::vector<double>{0.5, 0.5, 5}));
  EXPECT_EQ(scaler.scale.ToVector<double>(),
            (std::vector<double>{0.5, 0.5, 1}));
  EXPECT_EQ(z->type().ToString(), "f32[4,3]");
  EXPECT_EQ(z->ToVector<float>(),
            (std::vector<float>{-1, -1, 0, -1, -1, 0, 1, 1, 0, 1, 1, 0}));
  absl::StatusOr<Tensor> back = scaler.inverse_transform(*z);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToVector<float>(), x.ToVector<float>());

  // Population standard deviation of {1, 2, 3, 4} is sqrt(1.25).
  Tensor y = Tensor::FromVector<double>({1, 2, 3, 4}, Shape{4, 1});
  ASSERT_TRUE(scaler.fit(y).ok());
  EXPECT_DOUBLE_EQ(scaler.scale.GetAsDouble(0), std::sqrt(1.25));
  absl::StatusOr<Tensor> zy = scaler.transform(y);
  ASSERT_TRUE(zy.ok());
  EXPECT_EQ(zy->dtype(), DType::kF64);
  EXPECT_DOUBLE_EQ(zy->GetAsDouble(0), -1.5 / std::sqrt(1.25));

  absl::StatusOr<Tensor> wrong = scaler.transform(x);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr("fitted on features [1], got f32[4,3]"));
  EXPECT_FALSE(scaler.fit(Tensor::FromVector<float>({1, 2}, Shape{2})).ok());
}

TEST(StandardScalerTest, ConstantFeatureWithInexactMeanGetsScaleOne) {
  Tensor x = Tensor::FromVector<double>({0.1, 0.1, 0.1}, Shape{3, 1});
  StandardScaler scaler;
  ASSERT_TRUE(scaler.fit(x).ok());
  EXPECT_EQ(scaler.scale.GetAsDouble(0), 1.0);
}

TEST(MinMaxScalerTest, MapsOntoFeatureRange) {
  Tensor x = Tensor::FromVector<int32_t>({-1, 2, 3, 2, 1, 2}, Shape{3, 2});
  MinMaxScaler scaler;
  absl::StatusOr<Tensor> z = scaler.fit_transform(x);
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(scaler.data_min.ToVector<double>(), (std::vector<double>{-1, 2}));
  EXPECT_EQ(scaler.data_max.ToVector<double>(), (std::vector<double>{3, 2}));
  EXPECT_EQ(z->type().ToString(), "f32[3,2]");
  EXPECT_EQ(z->ToVector<float>(), (std::vector<float>{0, 0, 1, 0, 0.5f, 0}));

  MinMaxScaler sym;
  sym.feature_min = -1;
  z = sym.fit_transform(x);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->ToVector<float>(), (std::vector<float>{-1, -1, 1, -1, 0, -1}));
  absl::StatusOr<Tensor> back = sym.inverse_transform(*z);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToVector<float>(), (std::vector<float>{-1, 2, 3, 2, 1, 2}));
}

}  // namespace
}  // namespace sequent

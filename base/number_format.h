// Numbers for people: how alerts, logs and tables print measured values.
//
//   FormatNumber(180.0) == "180";  FormatNumber(7.25) == "7.25";
//   FormatNumber(0.08342) == "0.0834";  FormatNumber(1234.7) == "1235"
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_BASE_NUMBER_FORMAT_H_
#define SHORTFALL_BASE_NUMBER_FORMAT_H_

#include <string>

namespace shortfall {

// Counts and values of 100 or more as integers, smaller ones with three
// significant digits and trailing zeros dropped; "nan", "inf", "-inf".
std::string FormatNumber(double x);

}  // namespace shortfall

#endif  // SHORTFALL_BASE_NUMBER_FORMAT_H_

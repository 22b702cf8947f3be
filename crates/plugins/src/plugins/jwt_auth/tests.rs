pub fn count_verification() {}

// `express4` is an npm alias of express@4 for the test matrix; it ships no types of its own.
// The Express 5 types describe the API both majors share, which is all the tests use.
declare module 'express4' {
  import express from 'express';
  export default express;
}

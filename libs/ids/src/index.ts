export { uuidBytes, uuidText, uuidv7, uuidv7Of } from "./uuid-v7.ts";
